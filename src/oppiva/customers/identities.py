"""Normalising identifiers so that one customer's email, phone or card always reads the same.

Cards and payment tokens are never stored raw: only an HMAC-SHA256 keyed with the store's
secret, so a copy of the database does not give the numbers away.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from oppiva.customers.models import IdentityKind
from oppiva.errors import InvalidInput

HASHED_KINDS = frozenset({IdentityKind.CARD, IdentityKind.PAYMENT_TOKEN})
_EXTERNAL = re.compile(r"^[a-z0-9_.-]{1,40}:\S{1,200}$")


@dataclass(frozen=True)
class NormalIdentity:
    """An identifier ready to store or look up: `value` is unique per kind, `display` is safe to show."""

    kind: IdentityKind
    value: str
    display: str


def parse_kind(kind: str, field: str = "kind") -> IdentityKind:
    """The identity kind named by `kind`, or a clear error listing the kinds there are."""
    try:
        return IdentityKind(kind.strip().lower())
    except ValueError:
        known = ", ".join(k.value for k in IdentityKind)
        raise InvalidInput(field, f"unknown identity kind {kind!r} (known: {known})") from None


def normalise_email(raw: str, field: str = "email") -> str:
    """Lower-case the address and write its domain in IDNA (ASCII) form."""
    try:
        checked = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidInput(field, f"{raw!r} is not a valid email address: {exc}") from None
    return f"{checked.local_part.lower()}@{checked.ascii_domain.lower()}"


def normalise_phone(raw: str, region: str = "FI", field: str = "phone") -> str:
    """The number in E.164 form; numbers without a country code are read in `region`."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidInput(field, f"{raw!r} is not a phone number: {exc}") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidInput(field, f"{raw!r} is not a valid phone number in region {region}")
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def keyed_hash(key: bytes, kind: IdentityKind, value: str) -> str:
    """HMAC-SHA256 of `value`, separated per kind so a card and a token never collide."""
    return hmac.new(key, f"{kind.value}:{value}".encode(), hashlib.sha256).hexdigest()


def normalise(
    kind: IdentityKind | str, raw: str, *, key: bytes, region: str = "FI", field: str | None = None
) -> NormalIdentity:
    """Normalise one identifier of `kind`; raises `InvalidInput` naming `field` when it is not valid."""
    kind = (
        parse_kind(kind) if isinstance(kind, str) and not isinstance(kind, IdentityKind) else kind
    )
    field = field or kind.value
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidInput(field, "is empty")
    if "\x00" in raw:
        raise InvalidInput(field, "contains a NUL character")
    if len(raw) > 320:
        raise InvalidInput(field, f"is {len(raw)} characters long; at most 320 are accepted")
    match kind:
        case IdentityKind.EMAIL:
            value = normalise_email(raw, field)
            return NormalIdentity(kind, value, value)
        case IdentityKind.PHONE:
            value = normalise_phone(raw, region, field)
            return NormalIdentity(kind, value, value)
        case IdentityKind.CARD:
            digits = re.sub(r"[\s-]", "", raw)
            if not digits.isdigit() or not 4 <= len(digits) <= 32:
                raise InvalidInput(
                    field, "a card number is 4 to 32 digits (spaces and dashes allowed)"
                )
            return NormalIdentity(kind, keyed_hash(key, kind, digits), f"card …{digits[-4:]}")
        case IdentityKind.PAYMENT_TOKEN:
            token = raw.strip()
            if any(c.isspace() for c in token):
                raise InvalidInput(field, "a payment token has no spaces")
            return NormalIdentity(kind, keyed_hash(key, kind, token), f"token …{token[-4:]}")
        case IdentityKind.LOGIN:
            value = raw.strip().lower()
            return NormalIdentity(kind, value, value)
        case IdentityKind.DEVICE:
            value = raw.strip()
            return NormalIdentity(kind, value, value)
        case IdentityKind.EXTERNAL:
            system, _, ident = raw.strip().partition(":")
            value = f"{system.lower()}:{ident}"
            if not _EXTERNAL.match(value):
                raise InvalidInput(field, "an external id is written system:id, e.g. crm:1042")
            return NormalIdentity(kind, value, value)
    raise InvalidInput(field, f"unknown identity kind {kind!r}")  # pragma: no cover
