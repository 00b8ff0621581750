"""Settings: one object, read from `OPPIVA_*` environment variables, that runs with nothing set."""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything oppiva can be told; each field is `OPPIVA_<NAME>` in the environment."""

    model_config = SettingsConfigDict(env_prefix="OPPIVA_", env_file=".env", extra="ignore")

    database_url: str = "sqlite:///./oppiva.db"
    """SQLAlchemy URL of the operational store; `postgresql+psycopg://user@host/db` in production."""

    secret_key: SecretStr | None = None
    """Key of the keyed hashes (HMAC) of card numbers and payment tokens; never stored in the database."""

    secret_key_file: Path = Path("oppiva.key")
    """Where the key is kept (created on first use, mode 0600) when `secret_key` is not set."""

    default_region: str = "FI"
    """Region for phone numbers written without a country code."""

    sqlite_busy_timeout_ms: int = 5000
    """How long a SQLite writer waits for another one before it gives up."""

    host: str = "127.0.0.1"
    port: int = 8000

    behind_tls_proxy: bool = False
    """Set when a TLS-terminating proxy stands in front; `serve` then binds other addresses quietly."""

    token_ttl_minutes: int = 60
    """How long a staff login token lives."""

    max_body_bytes: int = 1_048_576
    """Largest request body the API reads."""

    currency: str = "EUR"
    """The currency receipts are kept in; a receipt in another is refused."""

    recognise_unknown_identifiers: bool = True
    """An unknown card, token or email at the till makes a recognised-but-anonymous profile."""

    unknown_sku: str = "reject"
    """What a receipt line with an unknown sku does: `reject` it, or `create` the product."""

    timezone: str = "Europe/Helsinki"
    """The business's time zone: the analysis counts days, weekdays and hours in it."""

    class_key: str = "visits_365d >= 40 and spend_365d >= 2000"
    """Criteria of a key customer (the default: a grocery's weekly big spender)."""

    class_regular: str = "visits_365d >= 12 and spend_365d >= 300"
    """Criteria of a regular customer, checked after key; anyone else who bought is occasional."""

    action_end: str = "margin_365d < 0 or return_rate_365d > 0.3"
    """Criteria of an unprofitable relationship: to change or end (others: keep key customers,
    develop the rest)."""

    quiet_share: float = 0.5
    """An open hour is quiet when its traffic is under this share of the store's mean hour."""

    default_margin: float = 0.25
    """Customer lifetime value: the margin rate of a customer whose purchases carry no cost."""

    discount_rate: float = 0.01
    """Customer lifetime value: the discount rate a month (the value looks 12 months ahead)."""

    till_offers: int = 3
    """Offers for the next visit in a receipt's answer and at `context=checkout`; 0 turns them off."""

    till_window_days: int = 56
    """Till offers: a regular product is offered only when bought within this many days."""

    till_due_days: int = 7
    """Till offers: a regular product is offered when due within this many days (the next visit)."""

    till_max_per_group: int = 1
    """Till offers: at most this many offers of one product group."""

    login_failures_per_account: int = 5
    login_failures_per_address: int = 20
    login_failure_window_minutes: int = 15
    """Failed logins allowed per account and per client address within the window."""

    def hashing_key(self) -> bytes:
        """Return the identity-hashing key, creating the key file once if no key is configured."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value().encode()
        path = self.secret_key_file
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
        return path.read_text().strip().encode()


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
