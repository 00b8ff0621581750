"""Normalisation of identifiers: one customer's email, phone or card always reads the same."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oppiva.customers.identities import keyed_hash, normalise
from oppiva.customers.models import IdentityKind
from oppiva.errors import InvalidInput

KEY = b"k"


def norm(kind: str, raw: str) -> str:
    return normalise(IdentityKind(kind), raw, key=KEY).value


def test_email_is_lower_cased_with_its_domain_in_idna():
    assert norm("email", " MAIJA@Example.FI ") == "maija@example.fi"
    assert norm("email", "Pekka@Exämple.fi") == "pekka@xn--exmple-cua.fi"


@pytest.mark.parametrize(
    "raw", ["040 123 4567", "0401234567", "+358 40 1234567", "+358-40-123-4567"]
)
def test_finnish_phone_numbers_in_any_spelling_become_e164(raw):
    assert norm("phone", raw) == "+358401234567"


def test_foreign_phone_numbers_keep_their_country():
    assert norm("phone", "+46 70 123 45 67") == "+46701234567"


def test_card_numbers_are_stored_only_as_a_keyed_hash():
    ident = normalise(IdentityKind.CARD, "6012 3456-7890", key=KEY)
    assert "601234567890" not in ident.value and "601234567890" not in ident.display
    assert ident.value == keyed_hash(KEY, IdentityKind.CARD, "601234567890")
    assert ident.display == "card …7890"
    assert normalise(IdentityKind.CARD, "601234567890", key=b"other").value != ident.value


def test_a_card_and_a_payment_token_with_the_same_digits_do_not_collide():
    assert norm("card", "123456789") != norm("payment_token", "123456789")


def test_external_ids_name_their_system():
    assert norm("external", "CRM:A-1042") == "crm:A-1042"
    with pytest.raises(InvalidInput, match="system:id"):
        norm("external", "1042")


@pytest.mark.parametrize(
    ("kind", "raw", "reason"),
    [
        ("email", "maija@", "not a valid email"),
        ("email", "", "empty"),
        ("phone", "123", "not a valid phone"),
        ("phone", "abc", "not a phone number"),
        ("card", "12", "4 to 32 digits"),
        ("card", "12ab34", "4 to 32 digits"),
        ("payment_token", "tok en", "no spaces"),
        ("email", "a" * 400 + "@example.fi", "at most 320"),
    ],
)
def test_bad_identifiers_are_refused_naming_the_field_and_reason(kind, raw, reason):
    with pytest.raises(InvalidInput, match=reason) as caught:
        normalise(IdentityKind(kind), raw, key=KEY, field="emails[3]")
    assert caught.value.field == "emails[3]"


@given(st.from_regex(r"\A[a-zA-Z0-9]{1,20}@[a-zA-Z]{1,20}\.(fi|com|se)\Z"))
def test_email_normalisation_is_idempotent_and_case_blind(raw):
    once = norm("email", raw)
    assert norm("email", once) == once
    assert norm("email", raw.upper()) == once
