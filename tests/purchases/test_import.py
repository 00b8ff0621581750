"""Bulk import: good rows stored, bad rows in the rejects file, re-runs change nothing."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import func, select, text

from oppiva.bulk.files import Mapping
from oppiva.customers.models import Customer, Identity
from oppiva.db import Store
from oppiva.errors import InvalidInput
from oppiva.purchases.importer import import_outlets, import_products, import_receipts
from oppiva.purchases.models import Product, Receipt, ReceiptLine
from tests.conftest import create_database_url, drop_database_url

pytestmark = pytest.mark.usefixtures("catalogue")

HEADER = [
    "source",
    "receipt_id",
    "purchased_at",
    "store",
    "card",
    "email",
    "currency",
    "line_no",
    "sku",
    "quantity",
    "unit_price",
    "discount",
    "line_total",
    "returns_receipt_id",
]
T = "2026-05-04T10:30:00+03:00"


def row(
    rid: str, sku: str = "MILK1L", qty: str = "1", price: str = "1.19", **more: str
) -> dict[str, str]:
    data = {
        "source": "till",
        "receipt_id": rid,
        "purchased_at": T,
        "store": "kamppi",
        "sku": sku,
        "quantity": qty,
        "unit_price": price,
    }
    data.update(more)
    return data


def write_csv(
    path: Path, rows: list[dict[str, str]], encoding: str = "utf-8", header: Sequence[str] = HEADER
) -> Path:
    with path.open("w", newline="", encoding=encoding) as f:
        writer = csv.DictWriter(f, header)
        writer.writeheader()
        writer.writerows(rows)
    return path


def counts(db: Store) -> tuple[int, int]:
    with db.transaction() as s:
        return (
            s.scalar(select(func.count()).select_from(Receipt)) or 0,
            s.scalar(select(func.count()).select_from(ReceiptLine)) or 0,
        )


def rejects_of(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_a_file_is_imported_and_a_second_run_adds_nothing(db, tmp_path):
    rows = [
        row("R1", card="6012000011112222"),
        row(
            "R1",
            sku="BREAD",
            qty="2",
            price="2.49",
            line_total="4.98",
            line_no="2",
            card="6012000011112222",
        ),
        row("R2", email="Maija@Example.fi"),
    ]
    path = write_csv(tmp_path / "r.csv", rows)
    first = import_receipts(db, path)
    assert (first.rows, first.new, first.lines, first.profiles, first.rejected_rows) == (
        3,
        2,
        3,
        2,
        0,
    )
    assert first.rejects_path is None
    assert counts(db) == (2, 3)
    again = import_receipts(db, path)
    assert (again.new, again.already, again.lines) == (0, 2, 0)
    assert counts(db) == (2, 3)
    with db.transaction() as s:
        r1 = s.scalar(select(Receipt).where(Receipt.external_id == "R1"))
        assert r1.total_cents == 119 + 498 and r1.identified_by == "card"
        assert [line.line_no for line in r1.lines] == [1, 2]
        profile = s.get(Customer, r1.customer_id)
        assert profile.enrolled is False


def test_bad_rows_go_to_the_rejects_file_and_good_rows_are_stored(db, tmp_path):
    rows = [
        row("G1"),
        row("B1", purchased_at="2026-13-45T10:00:00+03:00"),
        row("B2", purchased_at="2026-05-04 10:30:00"),
        row("B3", qty="0"),
        row("B4", qty="-1"),
        row("B5", sku="NOPE"),
        row("B6", currency="USD"),
        row("B7", qty="999999"),
        row("B8", price="abc"),
        row("B9", line_total="9.99"),
        row("B10", store="mars"),
        row("G2"),
        row("B11"),
        row("B11", sku="BREAD", price="-5"),
        row("G3", email="not-an-email"),
    ]
    path = write_csv(tmp_path / "bad.csv", rows)
    summary = import_receipts(db, path)
    assert summary.new == 2 and counts(db) == (2, 2)
    rejects = rejects_of(summary.rejects_path)
    by_line = {int(r["line"]): (r["column"], r["reason"]) for r in rejects}
    assert by_line[3][0] == "purchased_at" and "not a date" in by_line[3][1]
    assert by_line[4] == ("purchased_at", "needs a time zone, e.g. 2026-05-01T10:00:00+03:00")
    assert by_line[5] == ("quantity", "is zero")
    assert by_line[6][0] == "returns_receipt_id"
    assert by_line[7][0] == "sku" and by_line[8][0] == "currency"
    assert by_line[9][0] == "quantity" and by_line[10][0] == "unit_price"
    assert by_line[11][0] == "line_total" and by_line[12][0] == "store"
    assert by_line[14][0] == "" and "another line of this receipt" in by_line[14][1]
    assert by_line[15][0] == "unit_price"
    assert by_line[16][0] == "email"
    assert summary.rejected_rows == len(rejects) == 13
    assert "B1" in next(r for r in rejects if r["line"] == "3")["row"]


def test_unknown_skus_are_created_when_settings_say_so(db, tmp_path, monkeypatch):
    from oppiva.config import get_settings

    monkeypatch.setattr(get_settings(), "unknown_sku", "create")
    summary = import_receipts(
        db, write_csv(tmp_path / "r.csv", [row("R1", sku="NEW-1", price="3.50")])
    )
    assert summary.new == 1
    with db.transaction() as s:
        assert s.scalar(select(Product.department).where(Product.sku == "NEW-1")) == "unknown"


def test_a_receipt_id_repeated_later_in_the_file_is_rejected(db, tmp_path):
    path = write_csv(
        tmp_path / "dup.csv", [row("D1"), row("D2"), row("D1", sku="BREAD", price="2.49")]
    )
    summary = import_receipts(db, path)
    assert summary.new == 2
    [reject] = rejects_of(summary.rejects_path)
    assert (reject["line"], reject["column"]) == (
        "4",
        "receipt_id",
    ) and "first at line 2" in reject["reason"]


def test_a_repeated_receipt_id_in_a_later_batch_is_rejected_too(db, tmp_path):
    rows = [row(f"R{i}") for i in range(300)] + [row("R5", sku="BREAD", price="2.49")]
    summary = import_receipts(db, write_csv(tmp_path / "dup.csv", rows), batch_rows=100)
    assert summary.new == 300 and summary.rejected_rows == 1
    assert "appears twice in this file" in rejects_of(summary.rejects_path)[0]["reason"]


def test_a_truncated_last_line_is_rejected(db, tmp_path):
    path = write_csv(tmp_path / "cut.csv", [row("T1"), row("T2")])
    with path.open("a") as f:
        f.write("till,T3,2026-05-04T10:30:00+03:00,kamppi")
    summary = import_receipts(db, path)
    assert summary.new == 2
    [reject] = rejects_of(summary.rejects_path)
    assert reject["line"] == "4" and "columns" in reject["reason"]


def test_latin1_finnish_text_is_read(db, tmp_path):
    path = tmp_path / "tuotteet.csv"
    path.write_bytes(
        "sku,name,department,group,price\nRUIS,Ruisleipä Äijä,leipä,ruisleivät,2.10\n".encode(
            "latin-1"
        )
    )
    summary = import_products(db, path)
    assert summary.new == 1
    with db.transaction() as s:
        assert s.scalar(select(Product.name).where(Product.sku == "RUIS")) == "Ruisleipä Äijä"


def test_formula_injection_is_neutralised_in_the_rejects_file(db, tmp_path):
    path = tmp_path / "p.csv"
    path.write_text(
        'sku,name,department,group,price\nX1,"=HYPERLINK(""http://evil"")",food,g,abc\n'
    )
    summary = import_products(db, path)
    [reject] = rejects_of(summary.rejects_path)
    assert (
        reject["row"].startswith("'X1")
        or "'=HYPERLINK" in reject["row"]
        or reject["row"].startswith("X1")
    )
    assert not any(value.startswith("=") for value in reject.values())


def test_an_empty_file_and_a_header_only_file(db, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(InvalidInput, match="is empty"):
        import_receipts(db, empty)
    header = write_csv(tmp_path / "header.csv", [])
    summary = import_receipts(db, header)
    assert (summary.rows, summary.new, summary.rejected_rows) == (0, 0, 0)


def test_a_file_without_a_required_column_is_refused_whole(db, tmp_path):
    path = tmp_path / "nosku.csv"
    path.write_text(
        "receipt_id,purchased_at,store,quantity,unit_price\nR1,2026-05-04T10:30:00+03:00,kamppi,1,1.19\n"
    )
    with pytest.raises(InvalidInput, match=r"missing column.*sku"):
        import_receipts(db, path)
    assert counts(db) == (0, 0)


def test_returns_reference_receipts_stored_before(db, tmp_path):
    import_receipts(db, write_csv(tmp_path / "a.csv", [row("S1", sku="BREAD", price="2.49")]))
    path = write_csv(
        tmp_path / "b.csv",
        [
            row("S2", sku="BREAD", qty="-1", price="2.49", returns_receipt_id="S1"),
            row("S3", sku="MILK1L", qty="-1", returns_receipt_id="S1"),
            row("S4", sku="BREAD", qty="-1", price="2.49", returns_receipt_id="GHOST"),
        ],
    )
    summary = import_receipts(db, path)
    assert summary.new == 1 and summary.rejected_rows == 2
    with db.transaction() as s:
        back = s.scalar(select(Receipt).where(Receipt.external_id == "S2"))
        original = s.scalar(select(Receipt.id).where(Receipt.external_id == "S1"))
        assert back.total_cents == -249 and back.lines[0].returns_receipt_id == original


def test_a_mapping_file_reads_another_tills_columns(db, tmp_path):
    path = tmp_path / "kassa.csv"
    path.write_text(
        "KUITTI,AIKA,MYYMALA,TUOTE,MAARA,HINTA\nK1,2026-05-04T10:30:00+03:00,kamppi,MILK1L,1,1.19\n"
    )
    mapping = tmp_path / "kassa.yaml"
    mapping.write_text(
        "columns:\n  receipt_id: KUITTI\n  purchased_at: AIKA\n  store: MYYMALA\n"
        "  sku: TUOTE\n  quantity: MAARA\n  unit_price: HINTA\nvalues:\n  source: kassa2\n"
    )
    summary = import_receipts(db, path, mapping=Mapping.load(mapping))
    assert summary.new == 1
    with db.transaction() as s:
        assert s.scalar(select(Receipt.source)) == "kassa2"


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_json_lines_and_parquet_import_like_csv(db, tmp_path, fmt):
    rows = [row("J1", card="6012000099998888"), row("J2", sku="BREAD", price="2.49")]
    path = tmp_path / f"r.{fmt}"
    if fmt == "jsonl":
        import json

        path.write_text("\n".join(json.dumps(r) for r in rows) + "\n{broken\n")
    else:
        pq.write_table(pa.Table.from_pylist(rows), path)
    summary = import_receipts(db, path)
    assert summary.new == 2 and counts(db) == (2, 2)
    if fmt == "jsonl":
        assert rejects_of(summary.rejects_path)[0]["line"] == "3"


def test_the_cdnow_sample_imports_with_the_right_counts(db):
    from oppiva.demo.datasets import dataset_files

    data = dataset_files("cdnow")
    import_products(db, data.products)
    import_outlets(db, data.outlets)
    summary = import_receipts(db, data.receipts, default_source="cdnow")
    assert (summary.rows, summary.new, summary.lines, summary.profiles, summary.rejected_rows) == (
        6919,
        6919,
        6919,
        2357,
        0,
    )
    with db.transaction() as s:
        assert (
            s.scalar(select(func.sum(Receipt.total_cents))) == 24409194
        )  # $244,091.94, as in the file
        assert s.scalar(select(func.count(func.distinct(Receipt.customer_id)))) == 2357
        assert (
            s.scalar(select(func.count()).select_from(Identity).where(Identity.kind == "external"))
            == 2357
        )


def _state(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Everything the import wrote, with customers named by their identities instead of ids
    (PostgreSQL's sequences skip the values a killed transaction took)."""
    store = Store(url)
    with store.engine.connect() as conn:
        names: dict[Any, str] = {}
        for cid, kind, value in conn.execute(
            text("SELECT customer_id, kind, value FROM identity ORDER BY kind, value")
        ):
            names[cid] = names.get(cid, "") + f"{kind}:{value};"
        receipts = sorted(
            (src, rid, str(at), names.get(cid), by, str(ids), total)
            for src, rid, at, cid, by, ids, total in conn.execute(
                text(
                    "SELECT source, external_id, purchased_at, customer_id, identified_by, identifiers, total_cents FROM receipt"
                )
            )
        )
        lines = sorted(
            tuple(map(str, r))
            for r in conn.execute(
                text(
                    "SELECT r.external_id, l.line_no, l.quantity, l.line_total_cents FROM receipt_line l JOIN receipt r ON r.id = l.receipt_id"
                )
            )
        )
        customers = sorted(
            (names.get(cid), str(enrolled), str(start))
            for cid, enrolled, start in conn.execute(
                text("SELECT id, enrolled, relationship_start FROM customer")
            )
        )
    store.dispose()
    return {"receipt": receipts, "line": lines, "customer": customers}


def test_kill_9_in_the_middle_then_the_same_command_gives_one_import(db, tmp_path):
    rows = [
        row(f"K{i:05d}", card=f"60120000{i % 700:08d}", line_total="1.19") for i in range(20000)
    ]
    path = write_csv(tmp_path / "big.csv", rows)
    env = {**os.environ, "OPPIVA_SECRET_KEY": os.environ["OPPIVA_SECRET_KEY"]}
    command = [
        str(Path(sys.executable).with_name("oppiva")),
        "--database",
        db.url,
        "import",
        "receipts",
        str(path),
        "--batch-rows",
        "200",
    ]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while counts(db)[0] < 400 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert 0 < counts(db)[0] < 20000, "the import was not caught in the middle"
    subprocess.run(command, env=env, check=True, capture_output=True)
    # The same file into a fresh database, uninterrupted.
    backend = "postgresql" if db.engine.dialect.name == "postgresql" else "sqlite"
    other = create_database_url(backend, str(tmp_path))
    try:
        fresh = Store(other)
        fresh.upgrade()
        with db.transaction() as s, fresh.transaction() as f:
            from tests.purchases.conftest import _catalogue

            _catalogue(f)
            del s
        fresh.dispose()
        subprocess.run(
            [*command[:2], other, *command[3:]], env=env, check=True, capture_output=True
        )
        assert _state(db.url) == _state(other)
    finally:
        drop_database_url(other)


def test_receipts_that_link_two_customers_take_the_full_rules_between_batches(db, tmp_path):
    from tests.factories import make_customer

    with db.transaction() as s:
        member = make_customer(s, emails=["liisa@example.fi"], phones=[])
        member_id = member.id
    rows = [row(f"A{i}") for i in range(150)] + [row("CARD", card="6012000055556666")]
    rows += [row(f"B{i}") for i in range(150)] + [
        row("BOTH", card="6012000055556666", email="liisa@example.fi")
    ]
    rows += [row(f"C{i}") for i in range(150)]
    summary = import_receipts(db, write_csv(tmp_path / "link.csv", rows), batch_rows=100)
    assert (summary.new, summary.rejected_rows, summary.profiles) == (452, 0, 1)
    with db.transaction() as s:
        both = s.scalar(select(Receipt).where(Receipt.external_id == "BOTH"))
        card = s.scalar(select(Receipt).where(Receipt.external_id == "CARD"))
        assert (
            both.customer_id == member_id and card.customer_id == member_id
        )  # the profile folded in
        assert both.import_file is not None and len(both.lines) == 1
    assert import_receipts(db, tmp_path / "link.csv", batch_rows=100).new == 0


def test_a_return_of_a_receipt_on_the_single_receipt_road_keeps_its_reference(db, tmp_path):
    card, email = "6012000077778888", "anon@example.fi"
    rows = [
        row("X", card=card),
        row("Y", email=email),
        row("O1", sku="BREAD", price="2.49", card=card, email=email),  # ties two profiles: a merge
        row("R1", sku="BREAD", qty="-1", price="2.49", returns_receipt_id="O1"),
    ]
    summary = import_receipts(db, write_csv(tmp_path / "ret.csv", rows), batch_rows=2)
    assert (summary.new, summary.rejected_rows) == (4, 0)
    with db.transaction() as s:
        original = s.scalar(select(Receipt).where(Receipt.external_id == "O1"))
        back = s.scalar(select(Receipt).where(Receipt.external_id == "R1"))
        assert back.lines[0].returns_receipt_id == original.id
        assert (
            s.scalar(select(Receipt.customer_id).where(Receipt.external_id == "X"))
            == original.customer_id
        )
