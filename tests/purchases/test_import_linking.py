"""Receipts that tie customers together: the batch's set-based resolution leaves exactly what
the single-receipt road (`record_receipt`, one by one) leaves, on both databases."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from oppiva.customers import service as customers
from oppiva.customers.schemas import CustomerUpdate, InteractionIn
from oppiva.db import Store
from oppiva.loyalty import ledger
from oppiva.privacy import service as privacy
from oppiva.purchases.importer import RECEIPT_COLUMNS, ReceiptImport
from tests.conftest import create_database_url, drop_database_url
from tests.factories import make_customer
from tests.purchases.conftest import _catalogue
from tests.purchases.test_import import row, write_csv


def line(rid: str, day: str = "2026-05-04", qty: str = "1", **more: str) -> dict[str, str]:
    return row(rid, qty=qty, purchased_at=f"{day}T10:30:00+03:00", **more)


def write(path: Path, rows: list[dict[str, str]]) -> Path:
    return write_csv(path, rows, header=RECEIPT_COLUMNS)


# Known before the file: each receipt alone in its batch makes one anonymous profile.
SEEN = [
    line("S-A", card="6012000000000001"),
    line("S-B", day="2026-03-01", email="b@example.fi"),
    line("S-C", day="2026-01-15", card="6012000000000003"),
    line("S-D", card="6012000000000004"),
    line("S-E", day="2026-02-01", email="e@example.fi"),
    line("S-F", card="6012000000000006"),
    line("S-G", card="6012000000000007"),
    line("S-H", email="h@example.fi"),
    line("S-I", phone="+358401110001"),
]

LINKING = [
    line("P1", card="6012000000000099"),  # an ordinary receipt
    # Two anonymous profiles: the younger folds into the older, its earlier start comes along.
    line("L1", card="6012000000000001", email="b@example.fi"),
    line("L1", sku="BREAD", qty="2", price="2.49", card="6012000000000001", email="b@example.fi"),
    # A new card, then the card with a member's email: a profile made and folded at once; then
    # the member's email with a profile that has a birthday: the member gets it.
    line("L2", day="2025-12-24", card="6012000000000010"),
    line("L3", card="6012000000000010", email="m1@example.fi"),
    line("L4", email="m1@example.fi", card="6012000000000003"),
    # Two enrolled members on one receipt: no merge, the card decides.
    line("L5", card="6012000000000020", email="m3@example.fi"),
    # A merge that also brings a new phone (the first phone of the survivor: primary).
    line("L6", card="6012000000000004", email="e@example.fi", phone="+358401110009"),
    # A customer who asked not to be remembered, and three customers on one receipt: one by one.
    line("L7", card="6012000000000006", email="f@example.fi"),
    line("L8", card="6012000000000007", email="h@example.fi", phone="+358401110001"),
    # Returns of receipts above: one without identifiers, one of a new card.
    line("R1", sku="BREAD", qty="-1", price="2.49", returns_receipt_id="L1"),
    line("R2", qty="-1", returns_receipt_id="L6", card="6012000000000030"),
    line("P2", email="b@example.fi"),  # the folded profile's email: the survivor
]


def prepare(store: Store, tmp_path: Path) -> None:
    """The same customers in every database: members, profiles from a first file, a birthday,
    a timeline entry, preferences."""
    store.upgrade()
    with store.transaction() as s:
        _catalogue(s)
        make_customer(s, name="Maija", emails=["m1@example.fi"], phones=[])
        make_customer(
            s,
            name="Liisa",
            emails=["m2@example.fi"],
            phones=[],
            identities=[{"kind": "card", "value": "6012000000000020"}],
        )
        make_customer(s, name="Matti", emails=["m3@example.fi"], phones=[])
    ReceiptImport(store, write(tmp_path / "seen.csv", SEEN), batch_rows=1).run()
    with store.transaction() as s:
        ids = dict(s.execute(text("SELECT external_id, customer_id FROM receipt")).all())
        customers.update_customer(s, ids["S-C"], CustomerUpdate(birthday="1980-05-06"))
        customers.record_interaction(
            s,
            ids["S-B"],
            InteractionIn(
                channel="web",
                direction="inbound",
                summary="asked about a delivery",
                occurred_at=datetime(2026, 3, 2, tzinfo=UTC),
            ),
        )
        privacy.set_preference(s, ids["S-B"], name="remember_me", value=True, source="web")
        privacy.set_preference(s, ids["S-F"], name="remember_me", value=False, source="till")


def state(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every row the import could write or move, creation times left out."""
    queries = {
        "customer": "SELECT id, kind, status, name, given_name, family_name, business_id, birthday, "
        "relationship_start, merged_into_id, enrolled FROM customer",
        "identity": "SELECT customer_id, kind, value, display, label, is_primary FROM identity",
        "receipt": "SELECT source, external_id, purchased_at, outlet_id, customer_id, identified_by, "
        "identifiers, currency, total_cents, import_file, import_line FROM receipt",
        "line": "SELECT r.external_id, l.line_no, l.product_id, l.quantity, l.unit_price_cents, "
        "l.discount_cents, l.line_total_cents, l.cost_cents, o.external_id FROM receipt_line l "
        "JOIN receipt r ON r.id = l.receipt_id LEFT JOIN receipt o ON o.id = l.returns_receipt_id",
        "merge": "SELECT id, survivor_id, absorbed_id, reason, merged_by, filled_fields, unmerged_at "
        "FROM customer_merge",
        "move": "SELECT m.merge_id, m.table_name, m.column_name, coalesce(r.external_id, "
        "i.kind || ':' || i.value, CAST(m.row_id AS TEXT)) FROM merge_move m "
        "LEFT JOIN receipt r ON m.table_name = 'receipt' AND r.id = m.row_id "
        "LEFT JOIN identity i ON m.table_name = 'identity' AND i.id = m.row_id",
        "interaction": "SELECT id, customer_id FROM interaction",
        "preference": "SELECT id, customer_id, name, value FROM preference_event",
    }
    out: dict[str, list[tuple[Any, ...]]] = {}
    with store.engine.connect() as conn:
        for name, sql in queries.items():
            out[name] = sorted(
                tuple(
                    json.dumps(v, sort_keys=True) if isinstance(v, dict | list) else str(v)
                    for v in row
                )
                for row in conn.execute(text(sql))
            )
    return out


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_set_based_linking_leaves_what_the_single_receipt_road_leaves(
    tmp_path, backend, monkeypatch
):
    urls = [create_database_url(backend, str(tmp_path)) for _ in range(2)]
    stores = [Store(url) for url in urls]
    singles: list[set[tuple[str, str]]] = []
    original = ReceiptImport._singles

    def spy(self: ReceiptImport, slow: set[tuple[str, str]], *args: Any) -> None:
        singles.append(set(slow))
        original(self, slow, *args)

    monkeypatch.setattr(ReceiptImport, "_singles", spy)
    try:
        path = write(tmp_path / "linking.csv", LINKING)
        results = []
        for store, in_sets in zip(stores, (True, False), strict=True):
            prepare(store, tmp_path)
            run = ReceiptImport(store, path)
            run.link_in_sets = in_sets
            summary = run.run()
            assert (summary.new, summary.lines, summary.rejected_rows) == (12, 13, 0)
            results.append(state(store))
            again = ReceiptImport(store, path).run()
            assert (again.new, again.already) == (0, 12)
            assert state(store) == results[-1]
        # Only the forgetful customer's receipt and the three-customer one went one by one.
        assert singles[0] == {("till", "L7"), ("till", "L8")}
        assert len(singles[1]) > 2
        fast, slow = results
        for table in slow:
            assert fast[table] == slow[table], table
        assert len(fast["merge"]) >= 5
    finally:
        for store, url in zip(stores, urls, strict=True):
            store.dispose()
            drop_database_url(url)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_merge_of_two_members_of_one_programme_folds_their_accounts(tmp_path, backend):
    """Two profiles with points in one programme, tied by a receipt in a bulk file: one account
    with the sum, as `oppiva customers merge` and the till leave it (the merge takes the full
    road with the loyalty hooks instead of stopping on the membership's uniqueness)."""
    url = create_database_url(backend, str(tmp_path))
    store = Store(url)
    try:
        prepare(store, tmp_path)
        with store.transaction() as s:
            ids = dict(s.execute(text("SELECT external_id, customer_id FROM receipt")).all())
            ledger.create_programme(s, "plussa", "Plussa", pending_days=0)
            for n, who in enumerate((ids["S-A"], ids["S-B"])):
                ledger.join(s, "plussa", who, at=datetime(2026, 5, 1, tzinfo=UTC))
                ledger.earn(
                    s,
                    "plussa",
                    who,
                    100 + n * 50,
                    source="test",
                    external_id=str(who),
                    rule="test",
                    at=datetime(2026, 5, 1, tzinfo=UTC),
                )
        summary = ReceiptImport(store, write(tmp_path / "l1.csv", LINKING[1:3])).run()
        assert (summary.new, summary.rejected_rows) == (1, 0)
        with store.transaction() as s:
            merged = s.execute(text("SELECT survivor_id, absorbed_id FROM customer_merge")).all()
            assert len(merged) == 1
            survivor, absorbed = merged[0]
            assert {survivor, absorbed} == {ids["S-A"], ids["S-B"]}
            members = s.execute(
                text("SELECT customer_id FROM loyalty_membership ORDER BY customer_id")
            ).all()
            assert [m[0] for m in members] == [survivor]
            at = datetime(2026, 6, 1, tzinfo=UTC)
            assert ledger.balance(s, "plussa", survivor, at).available == 250
            assert s.execute(text("SELECT count(*) FROM loyalty_account_merge")).scalar() == 1
    finally:
        store.dispose()
        drop_database_url(url)
