"""The Python API and the settings."""

from __future__ import annotations

import stat

import pytest

import oppiva
from oppiva.config import Settings
from oppiva.customers import service
from oppiva.customers.schemas import CustomerCreate
from oppiva.migrations import current, head


@pytest.mark.parametrize("empty_database", ["sqlite", "postgresql"], indirect=True)
def test_connect_upgrades_the_store_and_gives_transactions(empty_database):
    db = oppiva.connect(empty_database)
    try:
        assert current(db.engine) == head()
        with db.transaction() as session:
            service.add_customer(session, CustomerCreate(name="Maija", emails=["maija@example.fi"]))

        def failing_unit_of_work() -> None:
            with db.transaction() as session:
                service.add_customer(
                    session, CustomerCreate(name="Matti", emails=["matti@example.fi"])
                )
                raise RuntimeError("the block failed")

        with pytest.raises(RuntimeError):
            failing_unit_of_work()
        with db.transaction() as session:
            assert [c.name for c in service.find_customers(session)] == ["Maija"]
    finally:
        db.dispose()


def test_the_hashing_key_is_created_once_with_owner_only_access(tmp_path):
    settings = Settings(secret_key=None, secret_key_file=tmp_path / "keys" / "oppiva.key")
    key = settings.hashing_key()
    assert len(key) == 64 and settings.hashing_key() == key
    mode = stat.S_IMODE((tmp_path / "keys" / "oppiva.key").stat().st_mode)
    assert mode == 0o600


def test_a_configured_key_is_used_as_given(monkeypatch):
    monkeypatch.setenv("OPPIVA_SECRET_KEY", "from-the-environment")
    monkeypatch.setenv("OPPIVA_DATABASE_URL", "postgresql+psycopg://u@h/db")
    settings = Settings()
    assert settings.hashing_key() == b"from-the-environment"
    assert settings.database_url == "postgresql+psycopg://u@h/db"
