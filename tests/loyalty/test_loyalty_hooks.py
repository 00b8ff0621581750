"""The ledger's personal data: export lists it, a merge moves it, an unmerge moves it back."""

from __future__ import annotations

from datetime import timedelta

from oppiva.customers import service as customers
from oppiva.loyalty import ledger
from oppiva.privacy.service import export_person
from tests.factories import make_customer
from tests.loyalty.conftest import WHEN


def test_the_export_lists_memberships_balances_and_the_statement(db, member):
    with db.transaction() as session:
        ledger.earn(
            session,
            "plussa",
            member,
            120,
            source="till",
            external_id="R1",
            rule="1 a euro",
            at=WHEN,
        )
    with db.transaction() as session:
        exported = export_person(session, member)
    sections = [record["loyalty"] for record in exported["records"] if "loyalty" in record]
    assert len(sections) == 1
    (account,) = sections[0]
    assert account["programme"] == "plussa"
    assert account["balance"]["earned"] == 120
    assert [row["points"] for row in account["statement"]] == [120]


def test_a_merge_carries_the_account_to_the_survivor_and_an_unmerge_back(db, member):
    with db.transaction() as session:
        ledger.earn(
            session, "plussa", member, 50, source="till", external_id="R2", rule="1 a euro", at=WHEN
        )
        survivor = make_customer(session).id
    with db.transaction() as session:
        customers.merge_customers(session, survivor, member, reason="same", actor="t")
    later = WHEN + timedelta(days=30)
    with db.transaction() as session:
        assert ledger.balance(session, "plussa", survivor, later).available == 50
    with db.transaction() as session:
        customers.unmerge_customer(session, member, reason="not the same", actor="t")
    with db.transaction() as session:
        assert ledger.balance(session, "plussa", member, later).available == 50
