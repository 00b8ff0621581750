"""Bulk import of receipts, products and outlets: streamed, validated per batch, loaded as Arrow.

A batch of string rows is typed and checked in DuckDB with SQL (`TRY_CAST`, window functions
for the receipt-level checks), its buyers are identified with a handful of set operations, and
it is written through ADBC (COPY on PostgreSQL) into temporary tables and moved into place with
`INSERT ... SELECT`, one transaction a batch. A batch holds whole receipts only, so a `kill -9`
leaves whole receipts behind, and a re-run skips them: the receipt remembers the file and line
it came from. Bad rows go to the rejects file; a receipt with one bad line is rejected whole.
Receipts whose identifiers tie two known customers together, or a customer who asked not to
be remembered, take the single-receipt road (`service.record_receipt`), so the rules are the
till API's.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Date

from oppiva.bulk.batches import (
    ImportSummary,
    Progress,
    checked_rows,
    file_digest,
    sql_text,
    tuples,
    with_columns,
)
from oppiva.bulk.connection import BulkConnection
from oppiva.bulk.files import (
    LINE,
    Mapping,
    Reject,
    RejectsWriter,
    detect_format,
    read_batches,
    row_text,
)
from oppiva.config import get_settings
from oppiva.customers.identities import NormalIdentity, keyed_hash, normalise
from oppiva.customers.models import Customer, IdentityKind
from oppiva.customers.service import MERGE_FILLABLE
from oppiva.db import Store
from oppiva.errors import InvalidInput, OppivaError
from oppiva.plugins import customer_links, folded_on_merge
from oppiva.purchases import linking, service
from oppiva.purchases.schemas import ReceiptIn

RECEIPT_COLUMNS = (
    "source",
    "receipt_id",
    "purchased_at",
    "store",
    "card",
    "email",
    "phone",
    "payment_token",
    "customer_ref",
    "currency",
    "line_no",
    "sku",
    "quantity",
    "unit_price",
    "discount",
    "line_total",
    "returns_receipt_id",
)
RECEIPT_REQUIRED = ("receipt_id", "purchased_at", "store", "sku", "quantity", "unit_price")
IDENTIFIER_COLUMNS: dict[str, IdentityKind] = {
    "card": IdentityKind.CARD,
    "payment_token": IdentityKind.PAYMENT_TOKEN,
    "customer_ref": IdentityKind.EXTERNAL,
    "email": IdentityKind.EMAIL,
    "phone": IdentityKind.PHONE,
}
PRODUCT_COLUMNS = (
    "sku",
    "name",
    "department",
    "group",
    "subgroup",
    "brand",
    "price",
    "cost",
    "launch_date",
    "attributes",
)
OUTLET_COLUMNS = ("code", "name", "kind", "city")
RANK = {kind: rank for rank, kind in enumerate(service.PRIORITY)}


# Receipts ----------------------------------------------------------------------------------

_VALIDATE = """
WITH b AS (
  SELECT *,
    coalesce(nullif(trim(source), ''), {default_source}) AS src,
    trim(receipt_id) AS rid,
    TRY_CAST(purchased_at AS TIMESTAMPTZ) AS ts,
    regexp_matches(coalesce(purchased_at, ''), '(Z|[+-][0-9]{{2}}:?[0-9]{{2}})$') AS has_tz,
    TRY_CAST(quantity AS DECIMAL(18,3)) AS q,
    TRY_CAST(unit_price AS DECIMAL(18,2)) AS p,
    TRY_CAST(coalesce(nullif(discount, ''), '0') AS DECIMAL(18,2)) AS d,
    TRY_CAST(nullif(line_total, '') AS DECIMAL(18,2)) AS t,
    TRY_CAST(nullif(line_no, '') AS INTEGER) AS ln,
    nullif(trim(returns_receipt_id), '') AS ret
  FROM batch
), c AS (
  SELECT b.*, o.id AS outlet_id, pr.id AS product_id, pr.cost_cents AS unit_cost,
    CASE
      WHEN rid IS NULL OR rid = '' THEN 'receipt_id|is empty'
      WHEN length(rid) > 100 THEN 'receipt_id|is longer than 100 characters'
      WHEN length(src) > 40 THEN 'source|is longer than 40 characters'
      WHEN ts IS NULL THEN 'purchased_at|is not a date and time: ' || coalesce(purchased_at, '(empty)')
      WHEN NOT has_tz THEN 'purchased_at|needs a time zone, e.g. 2026-05-01T10:00:00+03:00'
      WHEN ts > now() + INTERVAL 1 DAY THEN 'purchased_at|is in the future'
      WHEN ts < TIMESTAMPTZ '1970-01-01 00:00:00+00' THEN 'purchased_at|is before 1970'
      WHEN o.id IS NULL THEN 'store|no outlet has the code ' || coalesce(store, '(empty)')
      WHEN upper(coalesce(nullif(trim(currency), ''), {currency})) <> {currency}
        THEN 'currency|is ' || currency || '; receipts are kept in ' || {currency}
      WHEN q IS NULL THEN 'quantity|is not a number: ' || coalesce(quantity, '(empty)')
      WHEN q = 0 THEN 'quantity|is zero'
      WHEN abs(q) > 10000 THEN 'quantity|is not believable: ' || quantity
      WHEN q < 0 AND ret IS NULL THEN 'returns_receipt_id|a return (negative quantity) names the receipt it returns from'
      WHEN q > 0 AND ret IS NOT NULL THEN 'quantity|a line that names a returned receipt has a negative quantity'
      WHEN p IS NULL THEN 'unit_price|is not a number: ' || coalesce(unit_price, '(empty)')
      WHEN p < 0 OR p > 100000 THEN 'unit_price|is not believable: ' || unit_price
      WHEN d IS NULL OR d < 0 OR d > 100000 THEN 'discount|is not a believable amount: ' || discount
      WHEN line_total IS NOT NULL AND line_total <> '' AND t IS NULL THEN 'line_total|is not a number: ' || line_total
      WHEN line_no IS NOT NULL AND line_no <> '' AND (ln IS NULL OR ln < 1) THEN 'line_no|is not a line number: ' || line_no
      WHEN t IS NOT NULL AND abs(round(t * 100) - (round(q * p * 100) - round(d * 100))) > 1
        THEN 'line_total|is ' || t || ' but quantity × unit price − discount is ' || (round(q * p * 100) - round(d * 100)) / 100
      WHEN pr.id IS NULL THEN 'sku|no product has the sku ' || coalesce(b.sku, '(empty)')
      ELSE NULL
    END AS error
  FROM b
  LEFT JOIN outlets o ON o.code = b.store
  LEFT JOIN products pr ON pr.sku = b.sku
), g AS (
  SELECT *, "_grp" AS grp FROM c), r AS (
  SELECT src, rid, min(grp) AS first_grp, min("_line") AS first_line,
    min(coalesce(purchased_at, '')) <> max(coalesce(purchased_at, '')) AS many_ts,
    min(coalesce(store, '')) <> max(coalesce(store, '')) AS many_stores,
    min(concat_ws('|', card, email, phone, payment_token, customer_ref))
      <> max(concat_ws('|', card, email, phone, payment_token, customer_ref)) AS many_ids
  FROM g GROUP BY src, rid
), l AS (
  SELECT src, rid, ln, count(*) AS n_same_line FROM g WHERE ln IS NOT NULL GROUP BY src, rid, ln
), e AS (
  SELECT g.*, r.first_grp, r.first_line,
    CASE
      WHEN error IS NOT NULL THEN error
      WHEN grp <> r.first_grp THEN 'receipt_id|appears again after other receipts (first at line ' || r.first_line || ')'
      WHEN r.many_ts THEN 'purchased_at|differs between the lines of one receipt'
      WHEN r.many_stores THEN 'store|differs between the lines of one receipt'
      WHEN r.many_ids THEN 'card|the identifiers differ between the lines of one receipt'
      WHEN coalesce(l.n_same_line, 1) > 1 THEN 'line_no|repeats within the receipt'
      ELSE NULL
    END AS row_error
  FROM g JOIN r ON r.src = g.src AND r.rid IS NOT DISTINCT FROM g.rid
  LEFT JOIN l ON l.src = g.src AND l.rid IS NOT DISTINCT FROM g.rid AND l.ln = g.ln
), bad AS (
  -- A run of rows with one receipt key stands for one receipt: a bad row refuses its run.
  SELECT grp, min(CASE WHEN row_error IS NOT NULL THEN "_line" END) AS bad_line
  FROM e GROUP BY grp
)
SELECT e.*, bad.bad_line IS NOT NULL AS receipt_bad, bad.bad_line
FROM e JOIN bad ON bad.grp = e.grp
"""


@dataclass
class _Batch:
    """A validated batch: typed good receipts and lines, and the rejects."""

    receipts: pa.Table
    lines: pa.Table
    rejects: list[Reject]
    rows: pa.Table  # the good rows as read, for rejects found later (in the database)

    def reject(self, src: str, rid: str, column: str, reason: str) -> None:
        """Refuse a whole receipt: its first row says why, the others point at it."""
        mine = self.rows.filter(
            pc.and_(pc.equal(self.rows.column("src"), src), pc.equal(self.rows.column("rid"), rid))
        )
        columns = [c for c in RECEIPT_COLUMNS if c in mine.column_names]
        lines = mine.column(LINE).to_pylist()
        for i, line in enumerate(lines):
            why = (
                (column, reason)
                if i == 0
                else ("", f"another line of this receipt was refused (line {lines[0]})")
            )
            self.rejects.append(Reject(line, why[0], why[1], row_text(mine, columns, i)))


class ReceiptImport:
    """One run of `oppiva import receipts FILE`."""

    def __init__(
        self,
        store: Store,
        path: Path,
        *,
        fmt: str | None = None,
        mapping: Mapping | None = None,
        rejects_path: Path | None = None,
        encoding: str | None = None,
        batch_rows: int = 100_000,
        default_source: str = "import",
        progress: Progress | None = None,
    ) -> None:
        self.store = store
        self.path = path
        self.fmt = detect_format(path, fmt)
        self.mapping = mapping or Mapping()
        self.encoding = encoding
        self.batch_rows = batch_rows
        self.default_source = default_source
        self.progress = progress
        self.settings = get_settings()
        self.key = self.settings.hashing_key()
        self.summary = ImportSummary(
            "receipts",
            path,
            rejects_path=rejects_path or path.with_name(path.name + ".rejects.csv"),
        )
        self.file_id = file_digest(path)
        self.duck = duckdb.connect()
        self.duck.execute("SET TimeZone = 'UTC'")
        self.duck.execute("SET memory_limit = '1GB'")
        self._normal: dict[tuple[str, str], NormalIdentity | str] = {}
        self._digests: dict[tuple[str, str], str] = {}
        self._outlet_codes: dict[int, str] = {}
        self._idents: dict[tuple[str, str], list[NormalIdentity]] = {}
        # Receipts that tie customers together: resolved for the batch at once (`linking`);
        # False sends every one of them down the single-receipt road.
        self.link_in_sets = True

    def run(self) -> ImportSummary:
        started = time.perf_counter()
        rejects: list[Reject] = []
        writer = RejectsWriter(self.summary.rejects_path)  # type: ignore[arg-type]
        bulk = BulkConnection(self.store.url)
        try:
            self._load_catalogue(bulk)
            for table in self._whole_receipts(
                read_batches(
                    self.path,
                    self.fmt,
                    self.mapping,
                    rejects,
                    encoding=self.encoding,
                    rows_per_batch=self.batch_rows,
                )
            ):
                self.summary.rows += table.num_rows
                self._create_missing_products(bulk, table)
                batch = self._validate(table)
                batch.rejects.extend(rejects)
                rejects.clear()
                self._store(bulk, batch)
                writer.write(batch.rejects)
                if self.progress:
                    self.progress(table.num_rows)
            writer.write(rejects)
        finally:
            writer.close()
            bulk.close()
            self.duck.close()
        return self.summary.finish(writer, started)

    # reading -----------------------------------------------------------------------------

    def _whole_receipts(self, batches: Iterator[pa.Table]) -> Iterator[pa.Table]:
        """Batches that end at a receipt's end: the last receipt's rows wait for the next batch."""
        carry: pa.Table | None = None
        for raw in batches:
            table = with_columns(raw, RECEIPT_COLUMNS, RECEIPT_REQUIRED)
            if carry is not None:
                table = pa.concat_tables([carry, table])
            keys = pc.binary_join_element_wise(
                pc.fill_null(table.column("source"), ""),
                pc.fill_null(table.column("receipt_id"), ""),
                "\x1f",
            )
            last = keys[-1]
            same = pc.equal(keys, last).to_numpy(zero_copy_only=False)
            cut = len(same)
            while cut > 0 and same[cut - 1]:
                cut -= 1
            if cut == 0:
                carry = table  # one receipt longer than a batch: keep reading
                continue
            carry = table.slice(cut)
            yield table.slice(0, cut)
        if carry is not None and carry.num_rows:
            yield carry

    # catalogue ---------------------------------------------------------------------------

    def _load_catalogue(self, bulk: BulkConnection) -> None:
        self.duck.register(
            "products", bulk.arrow("SELECT sku, id, cost_cents, price_cents FROM product")
        )
        outlets = bulk.arrow("SELECT code, id FROM outlet")
        self.duck.register("outlets", outlets)
        self._outlet_codes = dict(
            zip(outlets.column("id").to_pylist(), outlets.column("code").to_pylist(), strict=True)
        )

    def _create_missing_products(self, bulk: BulkConnection, table: pa.Table) -> None:
        if self.settings.unknown_sku != "create":
            return
        self.duck.register("batch", table)
        missing = self.duck.sql(
            "SELECT sku, max(TRY_CAST(unit_price AS DECIMAL(18,2))) AS price FROM batch "
            "WHERE sku IS NOT NULL AND trim(sku) <> '' AND length(sku) <= 64 AND sku NOT IN (SELECT sku FROM products) GROUP BY sku"
        ).to_arrow_table()
        if not missing.num_rows:
            return
        now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        rows = pa.table(
            {
                "sku": missing.column("sku"),
                "price_cents": pa.array(
                    [round((p or Decimal(0)) * 100) for p in missing.column("price").to_pylist()],
                    pa.int64(),
                ),
            }
        )
        bulk.begin()
        bulk.stage("stage_new_product", rows)
        bulk.execute(
            "INSERT INTO product (sku, name, department, product_group, price_cents, attributes, created_at) "
            f"SELECT sku, sku, 'unknown', 'unknown', price_cents, {bulk.json(sql_text(json.dumps({'created_by': 'import'})))}, "
            f"{self._now_sql(bulk, now)} FROM stage_new_product WHERE true ON CONFLICT (sku) DO NOTHING"
        )
        bulk.commit()
        self._load_catalogue(bulk)

    @staticmethod
    def _now_sql(bulk: BulkConnection, now: str) -> str:
        return f"CAST('{now}+00' AS TIMESTAMPTZ)" if bulk.dialect == "postgresql" else f"'{now}'"

    # validation --------------------------------------------------------------------------

    def _validate(self, table: pa.Table) -> _Batch:
        # Runs of rows with the same receipt key, numbered in file order (cheaper here than a
        # window over the sorted batch): a key in two runs is a receipt id used twice.
        keys = pc.binary_join_element_wise(
            pc.fill_null(pc.utf8_trim_whitespace(table.column("source")), self.default_source),
            pc.fill_null(pc.utf8_trim_whitespace(table.column("receipt_id")), ""),
            "\x1f",
        ).to_numpy(zero_copy_only=False)
        runs = np.ones(len(keys), dtype=np.int64)
        if len(keys) > 1:
            runs[1:] = keys[1:] != keys[:-1]
        table = table.append_column("_grp", pa.array(np.cumsum(runs)))
        self.duck.register("batch", table)
        sql = _VALIDATE.format(
            default_source=sql_text(self.default_source),
            currency=sql_text(self.settings.currency),
        )
        checked = self.duck.sql(sql).to_arrow_table()
        bad_mask = checked.column("receipt_bad").to_numpy(zero_copy_only=False)
        rejects: list[Reject] = []
        if bad_mask.any():
            columns = [c for c in table.column_names if not c.startswith("_")]
            bad = checked.filter(pa.array(bad_mask))
            for i in range(bad.num_rows):
                error = bad.column("row_error")[i].as_py()
                if error is None:
                    column, reason = (
                        "",
                        f"another line of this receipt was refused (line {bad.column('bad_line')[i].as_py()})",
                    )
                else:
                    column, _, reason = error.partition("|")
                rejects.append(
                    Reject(bad.column(LINE)[i].as_py(), column, reason, row_text(bad, columns, i))
                )
        good = checked.filter(pa.array(~bad_mask)) if bad_mask.any() else checked
        self.duck.register("good", good)
        purchased = (
            "strftime(ts AT TIME ZONE 'UTC', '%Y-%m-%d %H:%M:%S.%f')"
            if self.store.engine.dialect.name == "sqlite"
            else "ts"
        )
        lines = self.duck.sql("""
            SELECT src AS source, rid AS external_id, first_line, grp, ln AS line_no,
              product_id, CAST(q AS DOUBLE) AS quantity,
              CAST(round(p * 100) AS BIGINT) AS unit_price_cents,
              CAST(round(d * 100) AS BIGINT) AS discount_cents,
              CAST(coalesce(round(t * 100), round(q * p * 100) - round(d * 100)) AS BIGINT) AS line_total_cents,
              CAST(round(unit_cost * q) AS BIGINT) AS cost_cents,
              ret AS returns_external_id, sku
            FROM good ORDER BY "_line"
        """).to_arrow_table()
        # A line without its number is numbered by its place in the receipt (a good receipt's
        # rows are one run of the file).
        runs = lines.column("grp").to_numpy()
        first = np.ones(len(runs), dtype=bool)
        first[1:] = runs[1:] != runs[:-1]
        starts = np.flatnonzero(first)
        place = np.arange(len(runs)) - np.repeat(starts, np.diff(np.append(starts, len(runs)))) + 1
        lines = lines.set_column(
            lines.schema.get_field_index("line_no"),
            "line_no",
            pc.coalesce(pc.cast(lines.column("line_no"), pa.int64()), pa.array(place)),
        ).drop_columns(["grp"])
        receipts = self.duck.sql(f"""
            SELECT src AS source, rid AS external_id, first(first_line) AS first_line,
              first({purchased}) AS purchased_at, first(ts) AS ts, first(outlet_id) AS outlet_id,
              first(card) AS card, first(email) AS email, first(phone) AS phone,
              first(payment_token) AS payment_token, first(customer_ref) AS customer_ref,
              CAST(sum(coalesce(round(t * 100), round(q * p * 100) - round(d * 100))) AS BIGINT) AS total_cents
            FROM good GROUP BY src, rid ORDER BY first_line
        """).to_arrow_table()
        return _Batch(receipts, lines, rejects, good)

    # identification ------------------------------------------------------------------------

    def _normalise(self, kind: IdentityKind, raw: str, source: str) -> NormalIdentity | str:
        """The identifier normalised, or the reason it is refused (cached over the file)."""
        value = f"{source}:{raw.strip()}" if kind is IdentityKind.EXTERNAL else raw
        cache_key = (kind.value, value)
        found = self._normal.get(cache_key)
        if found is None:
            try:
                found = normalise(kind, value, key=self.key, region=self.settings.default_region)
            except InvalidInput as exc:
                found = exc.reason
            if len(self._normal) > 1_000_000:
                self._normal.clear()
            self._normal[cache_key] = found
        return found

    # writing -----------------------------------------------------------------------------

    def _store(self, bulk: BulkConnection, batch: _Batch) -> None:
        receipts, lines = batch.receipts, batch.lines
        if not receipts.num_rows:
            return
        bulk.begin()
        try:
            bulk.stage("stage_key", receipts.select(["source", "external_id", "first_line"]))
            known = bulk.arrow(
                "SELECT s.source, s.external_id, s.first_line, r.import_file, r.import_line FROM stage_key s "
                "JOIN receipt r ON r.source = s.source AND r.external_id = s.external_id"
            )
            skip: set[tuple[str, str]] = set()
            for src, rid, first_line, file_id, line in tuples(known):
                skip.add((src, rid))
                if file_id == self.file_id and line != first_line:
                    batch.reject(
                        src, rid, "receipt_id", f"appears twice in this file (first at line {line})"
                    )
                else:
                    self.summary.already += 1
            # Returns must name a receipt that exists (stored, or earlier in this batch) and holds the sku.
            returns = lines.filter(pc.is_valid(lines.column("returns_external_id")))
            if returns.num_rows:
                bulk.stage("stage_ret", returns.select(["source", "returns_external_id", "sku"]))
                found = bulk.arrow(
                    "SELECT DISTINCT s.source, s.returns_external_id, s.sku FROM stage_ret s "
                    "JOIN receipt r ON r.source = s.source AND r.external_id = s.returns_external_id "
                    "JOIN receipt_line l ON l.receipt_id = r.id JOIN product p ON p.id = l.product_id AND p.sku = s.sku"
                )
                ok = set(tuples(found))
                originals = set(tuples(returns, "source", "returns_external_id"))
                in_batch = set(tuples(_only(lines, originals), "source", "external_id", "sku"))
                for src, rid, ret, sku in tuples(
                    returns, "source", "external_id", "returns_external_id", "sku"
                ):
                    if (src, rid) in skip or (src, ret, sku) in ok or (src, ret, sku) in in_batch:
                        continue
                    skip.add((src, rid))
                    batch.reject(
                        src,
                        rid,
                        "returns_receipt_id",
                        f"no receipt {ret!r} from {src} with {sku!r} to return",
                    )
            buyers, slow = self._identify(bulk, receipts, skip, batch)
            # A return of a receipt that takes the single-receipt road waits for it there.
            returned = returns.select(["source", "external_id", "returns_external_id"]).to_pylist()
            for r in returned:
                if (r["source"], r["returns_external_id"]) in slow:
                    slow.add((r["source"], r["external_id"]))
            keep = [
                (s, r) not in skip and (s, r) not in slow
                for s, r in zip(
                    receipts.column("source").to_pylist(),
                    receipts.column("external_id").to_pylist(),
                    strict=True,
                )
            ]
            new_receipts = receipts.filter(pa.array(keep))
            self._write(bulk, new_receipts, lines, buyers, self._new_profiles, self._new_identities)
            if slow and self.link_in_sets:
                slow = self._link(bulk, slow, receipts, lines)
            bulk.commit()
        except BaseException:
            bulk.rollback()
            raise
        if slow:
            self._singles(slow, receipts, lines, batch)

    def _identify(
        self, bulk: BulkConnection, receipts: pa.Table, skip: set[tuple[str, str]], batch: _Batch
    ) -> tuple[
        dict[tuple[str, str], tuple[int | None, str | None, list[str]]], set[tuple[str, str]]
    ]:
        """Buyers of the batch's receipts: (customer, identified by, identifier digests) per receipt,
        new profiles and identities staged, and the receipts that need the single-receipt road."""
        per_receipt: dict[tuple[str, str], list[NormalIdentity]] = {}
        cols = {
            c: receipts.column(c).to_pylist()
            for c in ("source", "external_id", "first_line", *IDENTIFIER_COLUMNS)
        }
        for i, (src, rid) in enumerate(zip(cols["source"], cols["external_id"], strict=True)):
            if (src, rid) in skip:
                continue
            found: list[NormalIdentity] = []
            for column, kind in IDENTIFIER_COLUMNS.items():
                raw = cols[column][i]
                if raw is None or not raw.strip():
                    continue
                normal = self._normalise(kind, raw, src)
                if isinstance(normal, str):
                    skip.add((src, rid))
                    batch.reject(src, rid, column, normal)
                    found = []
                    break
                found.append(normal)
            if found:
                per_receipt[(src, rid)] = found
        self._idents = per_receipt
        self._new_profiles: list[dict[str, Any]] = []
        self._new_identities: list[dict[str, Any]] = []
        buyers: dict[tuple[str, str], tuple[int | None, str | None, list[str]]] = {}
        if not per_receipt:
            return buyers, set()
        distinct = {(n.kind.value, n.value): n for ids in per_receipt.values() for n in ids}
        digest = self._digests  # over the whole file: a regular's card comes back every week
        if len(digest) > 1_000_000:
            digest.clear()
        for k, n in distinct.items():
            if k not in digest:
                digest[k] = f"{k[0]}:{keyed_hash(self.key, n.kind, n.value)[:32]}"
        bulk.stage(
            "stage_ident",
            pa.table({"kind": [k for k, _ in distinct], "value": [v for _, v in distinct]}),
        )
        owned = bulk.arrow(
            "SELECT s.kind, s.value, i.customer_id FROM stage_ident s JOIN identity i ON i.kind = s.kind AND i.value = s.value"
        )
        owner = dict(
            zip(
                zip(
                    owned.column("kind").to_pylist(), owned.column("value").to_pylist(), strict=True
                ),
                owned.column("customer_id").to_pylist(),
                strict=True,
            )
        )
        forgetful = self._not_remembered(bulk, set(owner.values()))
        # Receipts that share an identifier are about one buyer: join them (union-find).
        parent: dict[tuple[str, str], tuple[str, str]] = {}

        def root(x: tuple[str, str]) -> tuple[str, str]:
            while parent.setdefault(x, x) != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        for ids in per_receipt.values():
            first = (ids[0].kind.value, ids[0].value)
            for n in ids[1:]:
                parent[root((n.kind.value, n.value))] = root(first)
        groups: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for ident in distinct:
            groups.setdefault(root(ident), []).append(ident)
        group_owner: dict[tuple[str, str], int | None] = {}
        slow_groups: set[tuple[str, str]] = set()
        starts: dict[tuple[str, str], date] = {}
        when = dict(
            zip(
                zip(cols["source"], cols["external_id"], strict=True),
                receipts.column("ts").to_pylist(),
                strict=True,
            )
        )
        for key, ids in per_receipt.items():
            g = root((ids[0].kind.value, ids[0].value))
            day = when[key].date()
            starts[g] = min(starts.get(g, day), day)
        unowned = sum(1 for members in groups.values() if not any(m in owner for m in members))
        next_id = iter(bulk.allocate_ids("customer", unowned))
        for g, members in groups.items():
            owners = {owner[m] for m in members if m in owner}
            if len(owners) > 1 or owners & forgetful:
                slow_groups.add(g)
                continue
            if owners:
                cid: int | None = owners.pop()
            elif self.settings.recognise_unknown_identifiers:
                cid = next(next_id)
                self._new_profiles.append(
                    {
                        "id": cid,
                        "relationship_start": starts[g],
                        "status": "active",
                        "merged_into_id": None,
                    }
                )
                self.summary.profiles += 1
            else:
                cid = None
            group_owner[g] = cid
            if cid is not None:
                for m in members:
                    if m not in owner:
                        n = distinct[m]
                        self._new_identities.append(
                            {
                                "customer_id": cid,
                                "kind": n.kind.value,
                                "value": n.value,
                                "display": n.display,
                                "is_primary": False,
                            }
                        )
        slow: set[tuple[str, str]] = set()
        for key, ids in per_receipt.items():
            g = root((ids[0].kind.value, ids[0].value))
            if g in slow_groups:
                slow.add(key)
                continue
            cid = group_owner.get(g)
            best = min(ids, key=lambda n: RANK[n.kind])
            buyers[key] = (cid, best.kind.value if cid is not None else None, self._digests_of(ids))
        return buyers, slow

    def _digests_of(self, ids: list[NormalIdentity]) -> list[str]:
        return [self._digests[(n.kind.value, n.value)] for n in ids]

    def _not_remembered(self, bulk: BulkConnection, customers: set[int]) -> set[int]:
        if not customers:
            return set()
        bulk.stage(
            "stage_owner", pa.table({"customer_id": pa.array(sorted(customers), pa.int64())})
        )
        events = bulk.arrow(
            "SELECT p.customer_id, p.value FROM preference_event p JOIN stage_owner s ON s.customer_id = p.customer_id "
            "WHERE p.name = 'remember_me' ORDER BY p.customer_id, p.effective_at, p.id"
        )
        last: dict[int, bool] = {}
        for cid, value in zip(
            events.column("customer_id").to_pylist(),
            events.column("value").to_pylist(),
            strict=True,
        ):
            last[cid] = bool(value)
        return {cid for cid, value in last.items() if not value}

    def _write(
        self,
        bulk: BulkConnection,
        receipts: pa.Table,
        lines: pa.Table,
        buyers: dict[tuple[str, str], tuple[int | None, str | None, list[str]]],
        profiles: list[dict[str, Any]],
        identities: list[dict[str, Any]],
    ) -> None:
        """New profiles, then identities, then receipts with their lines."""
        now_sql = self._now_sql(bulk, datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f"))
        if profiles:
            bulk.stage(
                "stage_profile",
                _table(
                    profiles,
                    id=pa.int64(),
                    relationship_start=pa.date32(),
                    status=pa.string(),
                    merged_into_id=pa.int64(),
                ),
            )
            start = (
                "relationship_start"
                if bulk.dialect == "postgresql"
                else "strftime('%Y-%m-%d', relationship_start)"
            )
            bulk.execute(
                "INSERT INTO customer (id, kind, status, enrolled, language, relationship_start, merged_into_id, "
                f"created_at, updated_at) SELECT id, 'person', status, false, 'fi', {start}, merged_into_id, "
                f"{now_sql}, {now_sql} FROM stage_profile ORDER BY id"
            )
        if identities:
            bulk.stage(
                "stage_identity",
                _table(
                    identities,
                    customer_id=pa.int64(),
                    kind=pa.string(),
                    value=pa.string(),
                    display=pa.string(),
                    is_primary=pa.bool_(),
                ),
            )
            bulk.execute(
                "INSERT INTO identity (customer_id, kind, value, display, label, is_primary, created_at) "
                f"SELECT customer_id, kind, value, display, 'seen at intake', is_primary, {now_sql} FROM stage_identity WHERE true "
                "ON CONFLICT (kind, value) DO NOTHING"
            )
        if not receipts.num_rows:
            return
        keys = list(
            zip(
                receipts.column("source").to_pylist(),
                receipts.column("external_id").to_pylist(),
                strict=True,
            )
        )
        chosen = [buyers.get(k, (None, None, [])) for k in keys]
        staged = pa.table(
            {
                "source": receipts.column("source"),
                "external_id": receipts.column("external_id"),
                "purchased_at": receipts.column("purchased_at"),
                "outlet_id": receipts.column("outlet_id"),
                "customer_id": pa.array([c[0] for c in chosen], pa.int64()),
                "identified_by": pa.array([c[1] for c in chosen], pa.string()),
                "identifiers": pa.array([json.dumps(c[2]) for c in chosen], pa.string()),
                "total_cents": receipts.column("total_cents"),
                "import_line": receipts.column("first_line"),
            }
        )
        ids = pa.array(bulk.allocate_ids("receipt", receipts.num_rows), pa.int64())
        bulk.stage("stage_receipt", staged.append_column("id", ids))
        currency = sql_text(self.settings.currency)
        written = bulk.arrow(
            "INSERT INTO receipt (id, source, external_id, purchased_at, outlet_id, customer_id, identified_by, "
            "identifiers, currency, total_cents, created_at, import_file, import_line) "
            f"SELECT id, source, external_id, purchased_at, outlet_id, customer_id, identified_by, {bulk.json('identifiers')}, "
            f"{currency}, total_cents, {now_sql}, '{self.file_id}', import_line FROM stage_receipt WHERE true "
            "ON CONFLICT (source, external_id) DO NOTHING RETURNING id"
        )
        written = pc.cast(written.column("id"), pa.int64()).combine_chunks()
        # Only the lines of the receipts written just now (another import may have been first).
        if len(written) < len(ids):
            ids = pc.if_else(pc.is_in(ids, value_set=written), ids, pa.nulls(len(ids), pa.int64()))
        receipt_id = pc.take(ids, pc.index_in(_keys(lines), value_set=_keys(receipts)))
        lines = lines.append_column("receipt_id", receipt_id).filter(pc.is_valid(receipt_id))
        bulk.append(
            "receipt_line",
            pa.table(
                {
                    "receipt_id": lines.column("receipt_id"),
                    "line_no": pc.cast(lines.column("line_no"), pa.int32()),
                    "product_id": pc.cast(lines.column("product_id"), pa.int32()),
                    "quantity": pc.cast(lines.column("quantity"), pa.float64()),
                    "unit_price_cents": pc.cast(lines.column("unit_price_cents"), pa.int32()),
                    "discount_cents": pc.cast(lines.column("discount_cents"), pa.int32()),
                    "line_total_cents": pc.cast(lines.column("line_total_cents"), pa.int64()),
                    "cost_cents": pc.cast(lines.column("cost_cents"), pa.int64()),
                    "returns_receipt_id": self._returned_ids(bulk, lines, receipts, ids),
                }
            ),
        )
        self.summary.new += len(written)
        self.summary.lines += lines.num_rows

    @staticmethod
    def _returned_ids(
        bulk: BulkConnection, lines: pa.Table, receipts: pa.Table, ids: pa.Array
    ) -> pa.Array:
        """The id of the receipt each line returns from: written now, or stored before."""
        returned = pc.binary_join_element_wise(
            lines.column("source"), lines.column("returns_external_id"), "\x1f"
        )
        if not pc.any(pc.is_valid(returned)).as_py():
            return pa.nulls(lines.num_rows, pa.int64())
        found = pc.take(ids, pc.index_in(returned, value_set=_keys(receipts)))
        wanted = lines.filter(pc.and_(pc.is_valid(returned), pc.is_null(found)))
        if wanted.num_rows:
            bulk.stage(
                "stage_returned",
                wanted.select(["source", "returns_external_id"]).rename_columns(
                    ["source", "external_id"]
                ),
            )
            stored = bulk.arrow(
                "SELECT DISTINCT r.source, r.external_id, r.id FROM stage_returned s "
                "JOIN receipt r ON r.source = s.source AND r.external_id = s.external_id"
            )
            if stored.num_rows:
                before = pc.take(
                    stored.column("id"), pc.index_in(returned, value_set=_keys(stored))
                )
                found = pc.coalesce(found, pc.cast(before, pa.int64()))
        return pc.cast(found, pa.int64())

    def _link(
        self, bulk: BulkConnection, slow: set[tuple[str, str]], receipts: pa.Table, lines: pa.Table
    ) -> set[tuple[str, str]]:
        """Resolve the receipts that tie customers together with set operations, in the same
        transaction as the rest of the batch; the ones `linking` does not model come back."""
        mine = _only(receipts, slow).sort_by("first_line")
        returns: dict[tuple[str, str], set[tuple[str, str]]] = {}
        returning = lines.filter(pc.is_valid(lines.column("returns_external_id")))
        for src, rid, ret in tuples(returning, "source", "external_id", "returns_external_id"):
            if (src, rid) in slow and (src, ret) in slow:
                returns.setdefault((src, rid), set()).add((src, ret))
        items = [
            linking.Receipt(
                (src, rid),
                ts.date(),
                self._idents.get((src, rid), []),
                returns.get((src, rid), set()),
            )
            for src, rid, ts in tuples(mine, "source", "external_id", "ts")
        ]
        distinct = {(n.kind.value, n.value) for r in items for n in r.idents}
        bulk.stage(
            "stage_link_ident",
            pa.table(
                {"kind": [k for k, _ in distinct], "value": [v for _, v in distinct]},
                pa.schema([("kind", pa.string()), ("value", pa.string())]),
            ),
        )
        held = bulk.arrow(
            "SELECT s.kind, s.value, i.customer_id FROM stage_link_ident s "
            "JOIN identity i ON i.kind = s.kind AND i.value = s.value"
        )
        owner: dict[tuple[str, str], int] = {(k, v): c for k, v, c in tuples(held)}
        people, blocked = self._people(bulk, set(owner.values()))
        counter = itertools.count(max([0, *people]) + 1)
        left: set[tuple[str, str]] = set()
        outcomes: list[linking.Outcome] = []
        folded = folded_on_merge()
        for group in linking.groups(items, owner):
            touched = {owner.get((n.kind.value, n.value)) for r in group for n in r.idents}
            try:
                if touched & blocked:
                    raise linking.Unmodelled
                outcome = linking.replay(
                    group,
                    owner,
                    people,
                    recognise=self.settings.recognise_unknown_identifiers,
                    new_id=lambda: next(counter),
                )
                # A merge moving a row some domain folds (two memberships of one programme)
                # takes the full merge with its hooks: the group goes the single-receipt road.
                if any(table in folded for m in outcome.merges for table, _, _ in m.moved):
                    raise linking.Unmodelled
                outcomes.append(outcome)
            except linking.Unmodelled:
                left.update(r.key for r in group)
        self._write_links(bulk, outcomes, mine, lines, left)
        return left

    def _people(
        self, bulk: BulkConnection, ids: set[int]
    ) -> tuple[dict[int, linking.Person], set[int]]:
        """The customers `ids` as the linking rules see them, with every row the merge of one
        would move; and those the rules leave to the single-receipt road (an organisation, a
        record that is not active, a customer who ever asked not to be remembered)."""
        if not ids:
            return {}, set()
        bulk.stage("stage_link_owner", pa.table({"id": pa.array(sorted(ids), pa.int64())}))
        among = "IN (SELECT id FROM stage_link_owner)"
        fillable = ", ".join(MERGE_FILLABLE)
        people: dict[int, linking.Person] = {}
        blocked: set[int] = set()
        for row in bulk.arrow(
            f"SELECT id, kind, status, enrolled, relationship_start, {fillable} FROM customer WHERE id {among}"
        ).to_pylist():
            if row["kind"] != "person" or row["status"] != "active":
                blocked.add(row["id"])
            people[row["id"]] = linking.Person(
                row["id"],
                enrolled=bool(row["enrolled"]),
                start=_day(row["relationship_start"]),
                fields={
                    name: _day(row[name]) if _is_date(name) else row[name]
                    for name in MERGE_FILLABLE
                },
            )
        blocked |= set(
            bulk.arrow(
                "SELECT DISTINCT customer_id FROM preference_event "
                f"WHERE name = 'remember_me' AND NOT value AND customer_id {among}"
            )
            .column("customer_id")
            .to_pylist()
        )
        for cid, kind in tuples(
            bulk.arrow(f"SELECT DISTINCT customer_id, kind FROM identity WHERE customer_id {among}")
        ):
            people[cid].kinds.add(kind)
        for link in customer_links():
            rows = bulk.arrow(
                f"SELECT id, {link.column} AS customer_id FROM {link.table.name} "
                f"WHERE {link.column} {among} ORDER BY id"
            )
            for row_id, cid in tuples(rows):
                people[cid].rows.append((link.table.name, link.column, row_id))
        return people, blocked

    def _write_links(
        self,
        bulk: BulkConnection,
        outcomes: list[linking.Outcome],
        receipts: pa.Table,
        lines: pa.Table,
        left: set[tuple[str, str]],
    ) -> None:
        """What the linking rules decided, written: profiles, merged records, moved rows,
        identities, receipts, and the merges with what each moved (so unmerge can undo them)."""
        if not outcomes:
            return
        people = outcomes[0].people
        created = [cid for o in outcomes for cid in o.created]
        real = dict(zip(created, bulk.allocate_ids("customer", len(created)), strict=True))

        def final(cid: int) -> int:
            root = outcomes[0].root(cid)
            return real.get(root, root)

        def into(person: linking.Person) -> int | None:
            return (
                None
                if person.merged_into is None
                else real.get(person.merged_into, person.merged_into)
            )

        profiles = [
            {
                "id": real[cid],
                "relationship_start": people[cid].start,
                "status": "active" if people[cid].merged_into is None else "merged",
                "merged_into_id": into(people[cid]),
            }
            for cid in created
        ]
        self.summary.profiles += len(profiles)
        merges = [m for o in outcomes for m in o.merges]
        changed = sorted(
            {cid for m in merges for cid in (m.survivor, m.absorbed) if people[cid].stored}
        )
        if changed:
            bulk.stage(
                "stage_link_person",
                _table(
                    [
                        {
                            "id": cid,
                            "status": "active" if people[cid].merged_into is None else "merged",
                            "merged_into_id": into(people[cid]),
                            "relationship_start": people[cid].start,
                            **people[cid].fields,
                        }
                        for cid in changed
                    ],
                    id=pa.int64(),
                    status=pa.string(),
                    merged_into_id=pa.int64(),
                    relationship_start=pa.date32(),
                    **{n: pa.date32() if _is_date(n) else pa.string() for n in MERGE_FILLABLE},
                ),
            )
            columns = ("status", "merged_into_id", "relationship_start", *MERGE_FILLABLE)
            bulk.execute(
                "UPDATE customer SET "
                + ", ".join(
                    f"{c} = (SELECT s.{c} FROM stage_link_person s WHERE s.id = customer.id)"
                    for c in columns
                )
                + " WHERE id IN (SELECT id FROM stage_link_person)"
            )
        # The stored rows of every absorbed record go to the customer who stands for it now.
        moved: dict[tuple[str, str], dict[int, int]] = {}
        for m in merges:
            for table, column, row in m.moved:
                if isinstance(row, int):
                    moved.setdefault((table, column), {})[row] = final(m.survivor)
        for (table, column), rows in moved.items():
            bulk.stage(
                "stage_link_move",
                pa.table(
                    {
                        "id": pa.array(list(rows), pa.int64()),
                        "customer_id": pa.array(list(rows.values()), pa.int64()),
                    }
                ),
            )
            bulk.execute(
                f"UPDATE {table} SET {column} = (SELECT m.customer_id FROM stage_link_move m "
                f"WHERE m.id = {table}.id) WHERE id IN (SELECT id FROM stage_link_move)"
            )
        identities = [
            {
                "customer_id": final(a.customer),
                "kind": a.ident.kind.value,
                "value": a.ident.value,
                "display": a.ident.display,
                "is_primary": a.primary,
            }
            for o in outcomes
            for a in o.attached
        ]
        buyers = {
            key: (
                None if cid is None else final(cid),
                by,
                self._digests_of(self._idents.get(key, [])),
            )
            for o in outcomes
            for key, (cid, by) in o.buyers.items()
        }
        self._write(bulk, _only(receipts, left, keep=False), lines, buyers, profiles, identities)
        if not merges:
            return
        written: dict[tuple[str, Any], int] = {}
        for row_id, src, rid in tuples(
            bulk.arrow(
                "SELECT r.id, r.source, r.external_id FROM receipt r "
                "JOIN stage_receipt s ON r.source = s.source AND r.external_id = s.external_id"
            )
        ):
            written[("receipt", (src, rid))] = row_id
        if identities:
            for row_id, kind, value in tuples(
                bulk.arrow(
                    "SELECT i.id, i.kind, i.value FROM identity i "
                    "JOIN stage_identity s ON i.kind = s.kind AND i.value = s.value"
                )
            ):
                written[("identity", (kind, value))] = row_id
        merge_ids = bulk.allocate_ids("customer_merge", len(merges))
        bulk.stage(
            "stage_link_merge",
            pa.table(
                {
                    "id": pa.array(merge_ids, pa.int64()),
                    "survivor_id": pa.array(
                        [real.get(m.survivor, m.survivor) for m in merges], pa.int64()
                    ),
                    "absorbed_id": pa.array(
                        [real.get(m.absorbed, m.absorbed) for m in merges], pa.int64()
                    ),
                    "reason": pa.array([m.reason for m in merges], pa.string()),
                    "filled_fields": pa.array([json.dumps(m.filled) for m in merges], pa.string()),
                }
            ),
        )
        now_sql = self._now_sql(bulk, datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f"))
        bulk.execute(
            "INSERT INTO customer_merge (id, survivor_id, absorbed_id, reason, merged_by, merged_at, filled_fields) "
            f"SELECT id, survivor_id, absorbed_id, reason, {sql_text(service.INTAKE_ACTOR)}, {now_sql}, "
            f"{bulk.json('filled_fields')} FROM stage_link_merge ORDER BY id"
        )
        moves = [
            (merge_id, table, column, row if isinstance(row, int) else written[(table, row)])
            for merge_id, m in zip(merge_ids, merges, strict=True)
            for table, column, row in m.moved
        ]
        moves.sort()
        bulk.stage(
            "stage_link_moved",
            pa.table(
                {
                    "merge_id": pa.array([m[0] for m in moves], pa.int64()),
                    "table_name": pa.array([m[1] for m in moves], pa.string()),
                    "column_name": pa.array([m[2] for m in moves], pa.string()),
                    "row_id": pa.array([m[3] for m in moves], pa.int64()),
                }
            ),
        )
        bulk.execute(
            "INSERT INTO merge_move (merge_id, table_name, column_name, row_id) "
            "SELECT merge_id, table_name, column_name, row_id FROM stage_link_moved "
            "ORDER BY merge_id, table_name, column_name, row_id"
        )

    def _singles(
        self, slow: set[tuple[str, str]], receipts: pa.Table, lines: pa.Table, batch: _Batch
    ) -> None:
        """Receipts whose buyer needs the full rules (a merge, a forgetful customer): one
        transaction for all, a savepoint each, in file order (originals before returns)."""
        heads = {(r["source"], r["external_id"]): r for r in _only(receipts, slow).to_pylist()}
        rows: dict[tuple[str, str], list[dict[str, Any]]] = {key: [] for key in heads}
        for line in _only(lines, slow).to_pylist():
            rows[(line["source"], line["external_id"])].append(line)
        with self.store.transaction() as session:
            for key in sorted(heads, key=lambda k: heads[k]["first_line"]):
                head = heads[key]
                try:
                    with session.begin_nested():
                        receipt, created = service.record_receipt(
                            session, self._receipt_in(head, rows[key])
                        )
                        if created:
                            receipt.import_file = self.file_id
                            receipt.import_line = head["first_line"]
                except OppivaError as exc:
                    batch.reject(*key, getattr(exc, "field", ""), getattr(exc, "reason", str(exc)))
                    continue
                if created:
                    self.summary.new += 1
                    self.summary.lines += len(rows[key])
                else:
                    self.summary.already += 1

    def _receipt_in(self, head: dict[str, Any], rows: list[dict[str, Any]]) -> ReceiptIn:
        src = head["source"]
        return ReceiptIn.model_validate(
            {
                "source": src,
                "external_id": head["external_id"],
                "purchased_at": head["ts"],
                "store": self._outlet_codes[head["outlet_id"]],
                "currency": self.settings.currency,
                "identifiers": [
                    {
                        "kind": IDENTIFIER_COLUMNS[c].value,
                        "value": (f"{src}:{head[c]}" if c == "customer_ref" else head[c]),
                    }
                    for c in IDENTIFIER_COLUMNS
                    if head[c]
                ],
                "lines": [
                    {
                        "sku": r["sku"],
                        "quantity": Decimal(str(r["quantity"])),
                        "unit_price": Decimal(r["unit_price_cents"]) / 100,
                        "discount": Decimal(r["discount_cents"]) / 100,
                        "line_total": Decimal(r["line_total_cents"]) / 100,
                        "returns_receipt_id": r["returns_external_id"],
                    }
                    for r in rows
                ],
            }
        )


def _keys(table: pa.Table) -> pa.ChunkedArray:
    """Each row's receipt as one string: source and external id."""
    return pc.binary_join_element_wise(table.column("source"), table.column("external_id"), "\x1f")


def _only(table: pa.Table, keys: set[tuple[str, str]], *, keep: bool = True) -> pa.Table:
    """The table's rows of these receipts (`keep`), or of every other receipt."""
    found = pc.is_in(_keys(table), value_set=pa.array(["\x1f".join(k) for k in keys], pa.string()))
    return table.filter(found if keep else pc.invert(found))


def _table(rows: list[dict[str, Any]], **types: pa.DataType) -> pa.Table:
    """Rows as a table of these column types (a column of nulls keeps its type)."""
    return pa.Table.from_pylist(rows, pa.schema(list(types.items())))


def _is_date(name: str) -> bool:
    return isinstance(Customer.__table__.c[name].type, Date)


def _day(value: Any) -> Any:
    """A date read back from either database (SQLite gives text)."""
    return date.fromisoformat(value) if isinstance(value, str) else value


def import_receipts(store: Store, path: Path, **options: Any) -> ImportSummary:
    """Import a receipts file (see `ReceiptImport`)."""
    return ReceiptImport(store, path, **options).run()


# Catalogue -------------------------------------------------------------------------------------

_PRODUCTS = """
WITH b AS (
  SELECT *, trim(sku) AS k,
    TRY_CAST(price AS DECIMAL(18,2)) AS p,
    TRY_CAST(nullif(cost, '') AS DECIMAL(18,2)) AS c,
    TRY_CAST(nullif(launch_date, '') AS DATE) AS l,
    CASE WHEN nullif(trim(attributes), '') IS NULL THEN '{}' ELSE attributes END AS a
  FROM batch
)
SELECT *,
  CASE
    WHEN k IS NULL OR k = '' THEN 'sku|is empty'
    WHEN length(k) > 64 THEN 'sku|is longer than 64 characters'
    WHEN name IS NULL OR trim(name) = '' THEN 'name|is empty'
    WHEN department IS NULL OR trim(department) = '' THEN 'department|is empty'
    WHEN "group" IS NULL OR trim("group") = '' THEN 'group|is empty'
    WHEN p IS NULL THEN 'price|is not a number: ' || coalesce(price, '(empty)')
    WHEN p < 0 OR p > 1000000 THEN 'price|is not believable: ' || price
    WHEN cost IS NOT NULL AND cost <> '' AND (c IS NULL OR c < 0 OR c > 1000000) THEN 'cost|is not a believable amount: ' || cost
    WHEN launch_date IS NOT NULL AND launch_date <> '' AND l IS NULL THEN 'launch_date|is not a date (YYYY-MM-DD): ' || launch_date
    WHEN NOT json_valid(a) OR json_type(CAST(a AS JSON)) <> 'OBJECT' THEN 'attributes|is not a JSON object'
    WHEN count(*) OVER (PARTITION BY k) > 1 AND "_line" <> min("_line") OVER (PARTITION BY k) THEN 'sku|repeats an earlier line of this file'
    ELSE NULL
  END AS row_error
FROM b ORDER BY "_line"
"""

_OUTLETS = """
SELECT *, trim(code) AS k, coalesce(nullif(trim(kind), ''), 'store') AS kd,
  CASE
    WHEN code IS NULL OR trim(code) = '' THEN 'code|is empty'
    WHEN length(trim(code)) > 40 THEN 'code|is longer than 40 characters'
    WHEN name IS NULL OR trim(name) = '' THEN 'name|is empty'
    WHEN coalesce(nullif(trim(kind), ''), 'store') NOT IN ('store', 'web', 'app', 'phone', 'event') THEN 'kind|is not store, web, app, phone or event: ' || kind
    WHEN count(*) OVER (PARTITION BY trim(code)) > 1 AND "_line" <> min("_line") OVER (PARTITION BY trim(code)) THEN 'code|repeats an earlier line of this file'
    ELSE NULL
  END AS row_error
FROM batch ORDER BY "_line"
"""


def _import_catalogue(
    store: Store,
    path: Path,
    kind: str,
    *,
    fmt: str | None,
    mapping: Mapping | None,
    rejects_path: Path | None,
    encoding: str | None,
    progress: Progress | None,
) -> ImportSummary:
    summary = ImportSummary(
        kind, path, rejects_path=rejects_path or path.with_name(path.name + ".rejects.csv")
    )
    started = time.perf_counter()
    rejects: list[Reject] = []
    writer = RejectsWriter(summary.rejects_path)  # type: ignore[arg-type]
    duck = duckdb.connect()
    bulk = BulkConnection(store.url)
    columns, required, sql = (
        (PRODUCT_COLUMNS, ("sku", "name", "department", "group", "price"), _PRODUCTS)
        if kind == "products"
        else (OUTLET_COLUMNS, ("code", "name"), _OUTLETS)
    )
    now_sql = ReceiptImport._now_sql(bulk, datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f"))
    try:
        for raw in read_batches(
            path, detect_format(path, fmt), mapping or Mapping(), rejects, encoding=encoding
        ):
            table = with_columns(raw, columns, required)
            summary.rows += table.num_rows
            good = checked_rows(duck, table, sql, rejects)
            bulk.begin()
            try:
                if kind == "products":
                    staged = pa.table(
                        {
                            "sku": good.column("k"),
                            "name": good.column("name"),
                            "department": good.column("department"),
                            "product_group": good.column("group"),
                            "subgroup": good.column("subgroup"),
                            "brand": good.column("brand"),
                            "price_cents": pc.cast(
                                pc.round(pc.multiply(pc.cast(good.column("p"), pa.float64()), 100)),
                                pa.int64(),
                            ),
                            "cost_cents": pc.cast(
                                pc.round(pc.multiply(pc.cast(good.column("c"), pa.float64()), 100)),
                                pa.int64(),
                            ),
                            "launch_date": good.column("l"),
                            "attributes": good.column("a"),
                        }
                    )
                    bulk.stage("stage_product", staged)
                    launch = (
                        "s.launch_date"
                        if bulk.dialect == "postgresql"
                        else "strftime('%Y-%m-%d', s.launch_date)"
                    )
                    fields = (
                        "name",
                        "department",
                        "product_group",
                        "subgroup",
                        "brand",
                        "price_cents",
                        "cost_cents",
                        "launch_date",
                        "attributes",
                    )
                    changed = " OR ".join(
                        f"p.{f} IS DISTINCT FROM {launch if f == 'launch_date' else bulk.json('s.attributes') if f == 'attributes' else 's.' + f}"
                        if f != "attributes" or bulk.dialect != "postgresql"
                        else "CAST(p.attributes AS TEXT) IS DISTINCT FROM CAST(CAST(s.attributes AS JSON) AS TEXT)"
                        for f in fields
                    )
                    counts = bulk.arrow(
                        "SELECT count(*) FILTER (WHERE p.id IS NULL) AS new, "
                        f"count(*) FILTER (WHERE p.id IS NOT NULL AND ({changed})) AS updated, count(*) AS total "
                        "FROM stage_product s LEFT JOIN product p ON p.sku = s.sku"
                    ).to_pylist()[0]
                    bulk.execute(
                        "INSERT INTO product (sku, name, department, product_group, subgroup, brand, price_cents, cost_cents, "
                        "launch_date, attributes, created_at) "
                        f"SELECT sku, name, department, product_group, subgroup, brand, price_cents, cost_cents, {launch.replace('s.', '')}, "
                        f"{bulk.json('attributes')}, {now_sql} FROM stage_product s WHERE true "
                        "ON CONFLICT (sku) DO UPDATE SET name = excluded.name, department = excluded.department, "
                        "product_group = excluded.product_group, subgroup = excluded.subgroup, brand = excluded.brand, "
                        "price_cents = excluded.price_cents, cost_cents = excluded.cost_cents, launch_date = excluded.launch_date, "
                        "attributes = excluded.attributes"
                    )
                else:
                    staged = pa.table(
                        {
                            "code": good.column("k"),
                            "name": good.column("name"),
                            "kind": good.column("kd"),
                            "city": good.column("city"),
                        }
                    )
                    bulk.stage("stage_outlet", staged)
                    counts = bulk.arrow(
                        "SELECT count(*) FILTER (WHERE o.id IS NULL) AS new, "
                        "count(*) FILTER (WHERE o.id IS NOT NULL AND (o.name <> s.name OR o.kind <> s.kind OR o.city IS DISTINCT FROM s.city)) AS updated, "
                        "count(*) AS total FROM stage_outlet s LEFT JOIN outlet o ON o.code = s.code"
                    ).to_pylist()[0]
                    bulk.execute(
                        "INSERT INTO outlet (code, name, kind, city) SELECT code, name, kind, city FROM stage_outlet WHERE true "
                        "ON CONFLICT (code) DO UPDATE SET name = excluded.name, kind = excluded.kind, city = excluded.city"
                    )
                bulk.commit()
            except BaseException:
                bulk.rollback()
                raise
            summary.new += counts["new"]
            summary.updated += counts["updated"]
            summary.already += counts["total"] - counts["new"] - counts["updated"]
            writer.write(rejects)
            if progress:
                progress(table.num_rows)
        writer.write(rejects)
    finally:
        writer.close()
        bulk.close()
        duck.close()
    return summary.finish(writer, started)


def import_products(store: Store, path: Path, **options: Any) -> ImportSummary:
    """Create or update products by sku from a file."""
    return _import_catalogue(
        store,
        path,
        "products",
        **{
            "fmt": None,
            "mapping": None,
            "rejects_path": None,
            "encoding": None,
            "progress": None,
            **options,
        },
    )


def import_outlets(store: Store, path: Path, **options: Any) -> ImportSummary:
    """Create or update outlets (stores and other channels) by code from a file."""
    return _import_catalogue(
        store,
        path,
        "outlets",
        **{
            "fmt": None,
            "mapping": None,
            "rejects_path": None,
            "encoding": None,
            "progress": None,
            **options,
        },
    )
