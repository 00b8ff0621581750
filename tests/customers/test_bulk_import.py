"""Bulk import of members: new ones, enrolled profiles, rejects, re-runs."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select

from oppiva.customers import service
from oppiva.customers.bulk import CUSTOMER_COLUMNS, import_customers
from oppiva.customers.models import Address, Customer
from oppiva.offers.till import checkout_offers
from oppiva.privacy import service as privacy
from oppiva.privacy.models import ConsentEvent
from oppiva.purchases import service as purchases
from oppiva.purchases.schemas import OutletIn, ProductIn, ReceiptIn


def write(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, CUSTOMER_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_members_are_imported_once_with_identities_and_addresses(db, tmp_path):
    path = write(
        tmp_path / "m.csv",
        [
            {
                "customer_ref": "C1",
                "name": "Maija Meikäläinen",
                "birthday": "1980-05-06",
                "email": "Maija@Example.fi",
                "phone": "040 123 4567",
                "card": "6012 0000 0000 0001",
                "street": "Hämeenkatu 1",
                "postal_code": "33100",
                "city": "Tampere",
            },
            {
                "customer_ref": "C2",
                "given_name": "Pekka",
                "family_name": "Virtanen",
                "language": "sv",
                "email": "pekka@example.fi",
            },
        ],
    )
    first = import_customers(db, path, default_source="crm")
    assert (first.rows, first.new, first.rejected_rows) == (2, 2, 0)
    again = import_customers(db, path, default_source="crm")
    assert (again.new, again.already) == (0, 2)
    with db.transaction() as s:
        maija = service.identify(s, [("card", "6012000000000001")])
        assert maija.name == "Maija Meikäläinen" and maija.enrolled
        assert service.identify(s, [("external", "crm:C1")]).id == maija.id
        assert [a.city for a in s.scalars(select(Address))] == ["Tampere"]
        pekka = service.find_customers(s, "pekka@example.fi")[0]
        assert (pekka.name, pekka.language) == ("Pekka Virtanen", "sv")


def test_a_member_takes_over_the_profile_the_tills_recognised(db, tmp_path):
    with db.transaction() as s:
        purchases.save_outlet(s, OutletIn(code="kamppi", name="Kamppi"))
        purchases.save_product(
            s, ProductIn(sku="MILK", name="Milk", department="food", group="dairy", price="1.19")
        )
        receipt, _ = purchases.record_receipt(
            s,
            ReceiptIn.model_validate(
                {
                    "external_id": "R1",
                    "purchased_at": "2026-05-04T10:00:00+03:00",
                    "store": "kamppi",
                    "identifiers": [{"kind": "card", "value": "6012000000000009"}],
                    "lines": [{"sku": "MILK", "quantity": 1, "unit_price": "1.19"}],
                }
            ),
        )
        profile_id = receipt.customer_id
    summary = import_customers(
        db,
        write(
            tmp_path / "m.csv",
            [{"customer_ref": "C9", "name": "Liisa", "card": "6012000000000009"}],
        ),
    )
    assert (summary.new, summary.updated) == (0, 1)
    with db.transaction() as s:
        liisa = s.get(Customer, profile_id)
        assert (liisa.name, liisa.enrolled) == ("Liisa", True)
        assert [r.id for r in purchases.receipts_of(s, profile_id)]  # the purchase history stays


def test_bad_members_go_to_the_rejects_file(db, tmp_path):
    with db.transaction() as s:
        from tests.factories import make_customer

        make_customer(s, emails=["taken@example.fi"])
    path = write(
        tmp_path / "m.csv",
        [
            {"customer_ref": "", "name": "No ref"},
            {"customer_ref": "B1", "name": "", "email": "b1@example.fi"},
            {"customer_ref": "B2", "name": "Bad", "email": "not-an-email"},
            {"customer_ref": "B3", "name": "Bad", "phone": "123"},
            {"customer_ref": "B4", "name": "Bad", "language": "de"},
            {"customer_ref": "B5", "name": "Bad", "birthday": "1980-13-01"},
            {"customer_ref": "B6", "name": "Bad", "street": "Katu 1"},
            {"customer_ref": "B7", "name": "Taken", "email": "TAKEN@example.fi"},
            {"customer_ref": "G1", "name": "Good", "email": "good@example.fi"},
            {"customer_ref": "G1", "name": "Again"},
            {"customer_ref": "G2", "name": "=cmd|' /C calc'!A0"},
        ],
    )
    summary = import_customers(db, path)
    assert summary.new == 2 and summary.rejected_rows == 9
    with summary.rejects_path.open() as f:
        rejects = {int(r["line"]): r for r in csv.DictReader(f)}
    assert [rejects[n]["column"] for n in range(2, 12) if n in rejects] == [
        "customer_ref",
        "name",
        "email",
        "phone",
        "language",
        "birthday",
        "postal_code",
        "email",
        "customer_ref",
    ]
    assert "already belongs to customer" in rejects[9]["reason"]
    with db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(Customer)) == 3
        # A formula stays what it was in the store; only exports neutralise it.
        assert service.find_customers(s, "=cmd")[0].name == "=cmd|' /C calc'!A0"


def test_consents_come_with_the_members_and_the_offers_rules_see_them(db, tmp_path):
    path = write(
        tmp_path / "m.csv",
        [
            {
                "customer_ref": "K1",
                "name": "Kaikki Sallittu",
                "email": "kaikki@example.fi",
                "relationship_start": "2024-03-01",
                "consent_profiling": "all",
                "consent_personalised_offers": "email; SMS",
                "consent_marketing": "denied",
            },
            {
                "customer_ref": "K2",
                "name": "Aika Annettu",
                "consent_profiling": "email",
                "consent_at": "2025-02-03T10:00:00+02:00",
            },
            {"customer_ref": "K3", "name": "Ei Mitään"},
            {"customer_ref": "K4", "name": "Bad", "consent_profiling": "fax"},
            {
                "customer_ref": "K5",
                "name": "Bad",
                "consent_profiling": "all",
                "consent_at": "2025-13-01",
            },
            {
                "customer_ref": "K6",
                "name": "Bad",
                "consent_profiling": "all",
                "consent_at": "2025-02-03T10:00",
            },
        ],
    )
    summary = import_customers(db, path, default_source="crm")
    assert (summary.new, summary.rejected_rows) == (3, 3)
    with summary.rejects_path.open() as f:
        rejects = {int(r["line"]): (r["column"], r["reason"]) for r in csv.DictReader(f)}
    assert rejects[5] == (
        "consent_profiling",
        "unknown channel 'fax' (known: email, sms, post, phone, push, all)",
    )
    assert rejects[6][0] == rejects[7][0] == "consent_at"
    assert "time zone" in rejects[7][1]
    again = import_customers(db, path, default_source="crm")
    assert again.new == 0
    with db.transaction() as s:
        ids = {
            ref: service.identify(s, [("external", f"crm:{ref}")]).id for ref in ("K1", "K2", "K3")
        }
        events = s.scalars(select(ConsentEvent).order_by(ConsentEvent.id)).all()
        decided = {(e.customer_id, e.purpose, e.channel, e.status) for e in events}
        assert len(events) == len(decided) == 5 + 2 + 5 + 1  # nothing twice after the re-import
        assert (ids["K1"], "personalised_offers", "sms", "granted") in decided
        assert (ids["K1"], "marketing", "post", "denied") in decided
        assert {e.source for e in events} == {"import crm"}
        k2 = next(e for e in events if e.customer_id == ids["K2"])
        assert (k2.channel, k2.effective_at) == ("email", datetime(2025, 2, 3, 8, tzinfo=UTC))
        k1 = next(e for e in events if e.customer_id == ids["K1"])
        assert k1.effective_at == datetime(2024, 3, 1, tzinfo=UTC)  # the day the member joined
        assert privacy.can_contact(s, ids["K1"], "personalised_offers", "email")
        assert not privacy.can_contact(s, ids["K1"], "personalised_offers", "post")
        assert not privacy.can_contact(s, ids["K1"], "marketing", "email")
        assert not privacy.can_contact(s, ids["K3"], "profiling", "email")
        # The till's offers need profiling and personal offers granted: K1 has them, K3 not.
        assert checkout_offers(s, ids["K1"], []).refusal is None
        assert checkout_offers(s, ids["K3"], []).refusal == "no_consent"
