"""Bulk import of enrolled customers (members) with their identities and addresses.

Each row is a member known to another system by `customer_ref`; the member's external
identity `SOURCE:customer_ref` makes a re-import add nothing. A member whose card or email
the tills have already seen takes over that recognised-but-anonymous profile (its purchase
history included) instead of becoming a second record. Identifiers are normalised row by row
(they need the email and phone rules); everything is written with set operations.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from oppiva.bulk.batches import ImportSummary, Progress, sql_text, with_columns
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
from oppiva.customers.identities import NormalIdentity, normalise
from oppiva.customers.models import IdentityKind
from oppiva.customers.service import name_key
from oppiva.db import Store
from oppiva.errors import InvalidInput
from oppiva.privacy.models import ConsentStatus, ContactChannel, Purpose
from oppiva.privacy.service import parse_channels

CUSTOMER_COLUMNS = (
    "customer_ref",
    "name",
    "given_name",
    "family_name",
    "language",
    "birthday",
    "relationship_start",
    "email",
    "phone",
    "card",
    "street",
    "postal_code",
    "city",
    *(f"consent_{purpose.value}" for purpose in Purpose),
    "consent_at",
)
IDENTIFIERS = {"email": IdentityKind.EMAIL, "phone": IdentityKind.PHONE, "card": IdentityKind.CARD}
DENIED = "denied"
"""The value of a `consent_<purpose>` column that records a refusal on every channel."""


@dataclass
class _Member:
    line: int
    row: str
    ref: NormalIdentity
    fields: dict[str, Any]
    identities: list[NormalIdentity]
    address: tuple[str, str, str] | None
    consents: list[tuple[str, str, str]]
    """(purpose, channel, status) decisions the other system recorded, one per channel."""
    consent_at: datetime


def _date(value: str | None, column: str) -> date | None:
    if value is None or not value.strip():
        return None
    try:
        parsed = date.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(column, f"is not a date (YYYY-MM-DD): {value}") from None
    if not date(1900, 1, 1) <= parsed <= date.today():
        raise InvalidInput(column, f"is not believable: {value}")
    return parsed


def _text(value: str | None, column: str, limit: int) -> str | None:
    text = " ".join(value.split()) if value else ""
    if len(text) > limit:
        raise InvalidInput(column, f"is longer than {limit} characters")
    return text or None


def _consents(row: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The consent columns as decisions: channels granted (`all`, or names separated by spaces,
    commas or semicolons), `denied` (every channel), or nothing when empty."""
    decisions = []
    for purpose in Purpose:
        column = f"consent_{purpose.value}"
        value = (row[column] or "").strip().lower()
        if not value:
            continue
        if value == DENIED:
            decisions += [
                (purpose.value, c.value, ConsentStatus.DENIED.value) for c in ContactChannel
            ]
            continue
        channels: dict[str, None] = {}
        for name in value.replace(",", " ").replace(";", " ").split():
            channels.update(dict.fromkeys(c.value for c in parse_channels(name, column)))
        decisions += [(purpose.value, c, ConsentStatus.GRANTED.value) for c in channels]
    return decisions


def _moment(value: str | None, joined: date) -> datetime:
    """When the consents were given: `consent_at` (a date, or a time with its zone), else the
    day the member joined."""
    text = (value or "").strip()
    if not text:
        return datetime(joined.year, joined.month, joined.day, tzinfo=UTC)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput("consent_at", f"is not a date or a time: {value}") from None
    if len(text) > 10 and moment.tzinfo is None:
        raise InvalidInput("consent_at", "needs a time zone, e.g. 2024-05-01T10:00:00+03:00")
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if not datetime(1900, 1, 1, tzinfo=UTC) <= moment <= datetime.now(UTC):
        raise InvalidInput("consent_at", f"is not believable: {value}")
    return moment.astimezone(UTC)


def _member(row: dict[str, Any], text: str, source: str, key: bytes, region: str) -> _Member:
    ref = _text(row["customer_ref"], "customer_ref", 200)
    if ref is None:
        raise InvalidInput("customer_ref", "is empty")
    given, family = (
        _text(row["given_name"], "given_name", 100),
        _text(row["family_name"], "family_name", 100),
    )
    name = _text(row["name"], "name", 200) or " ".join(p for p in (given, family) if p) or None
    if name is None:
        raise InvalidInput("name", "is empty (and so are given_name and family_name)")
    language = (row["language"] or "fi").strip().lower()
    if language not in ("fi", "sv", "en"):
        raise InvalidInput("language", f"is not fi, sv or en: {row['language']}")
    identities = []
    for column, kind in IDENTIFIERS.items():
        if row[column] and row[column].strip():
            identities.append(normalise(kind, row[column], key=key, region=region, field=column))
    address_parts = [_text(row[c], c, 200) for c in ("street", "postal_code", "city")]
    if any(address_parts) and not all(address_parts):
        missing = [
            c
            for c, v in zip(("street", "postal_code", "city"), address_parts, strict=True)
            if not v
        ]
        raise InvalidInput(missing[0], "an address needs street, postal_code and city")
    external = normalise(IdentityKind.EXTERNAL, f"{source}:{ref}", key=key, field="customer_ref")
    joined = _date(row["relationship_start"], "relationship_start") or date.today()
    return _Member(
        line=row[LINE],
        row=text,
        ref=external,
        fields={
            "name": name,
            "name_key": name_key(name),
            "given_name": given,
            "family_name": family,
            "language": language,
            "birthday": _date(row["birthday"], "birthday"),
            "relationship_start": joined,
        },
        identities=identities,
        address=tuple(address_parts) if all(address_parts) else None,  # type: ignore[arg-type]
        consents=_consents(row),
        consent_at=_moment(row["consent_at"], joined),
    )


def import_customers(
    store: Store,
    path: Path,
    *,
    fmt: str | None = None,
    mapping: Mapping | None = None,
    rejects_path: Path | None = None,
    encoding: str | None = None,
    default_source: str = "import",
    progress: Progress | None = None,
    batch_rows: int = 50_000,
) -> ImportSummary:
    """Import members; a re-import adds nothing, bad rows go to the rejects file."""
    settings = get_settings()
    key = settings.hashing_key()
    summary = ImportSummary(
        "customers", path, rejects_path=rejects_path or path.with_name(path.name + ".rejects.csv")
    )
    started = time.perf_counter()
    rejects: list[Reject] = []
    writer = RejectsWriter(summary.rejects_path)  # type: ignore[arg-type]
    bulk = BulkConnection(store.url)
    try:
        for raw in read_batches(
            path,
            detect_format(path, fmt),
            mapping or Mapping(),
            rejects,
            encoding=encoding,
            rows_per_batch=batch_rows,
        ):
            table = with_columns(raw, CUSTOMER_COLUMNS, ("customer_ref",))
            summary.rows += table.num_rows
            columns = [c for c in table.column_names if c != LINE]
            members: list[_Member] = []
            seen: dict[tuple[str, str], int] = {}
            for i, row in enumerate(table.to_pylist()):
                try:
                    member = _member(
                        row,
                        row_text(table, columns, i),
                        default_source,
                        key,
                        settings.default_region,
                    )
                    for ident in (member.ref, *member.identities):
                        earlier = seen.get((ident.kind.value, ident.value))
                        if earlier is not None:
                            column = (
                                "customer_ref"
                                if ident.kind is IdentityKind.EXTERNAL
                                else ident.kind.value
                            )
                            raise InvalidInput(column, f"repeats line {earlier} of this file")
                    for ident in (member.ref, *member.identities):
                        seen[(ident.kind.value, ident.value)] = member.line
                    members.append(member)
                except InvalidInput as exc:
                    rejects.append(
                        Reject(row[LINE], exc.field, exc.reason, row_text(table, columns, i))
                    )
            _store_members(bulk, members, summary, rejects, f"import {default_source}")
            writer.write(rejects)
            if progress:
                progress(table.num_rows)
        writer.write(rejects)
    finally:
        writer.close()
        bulk.close()
    return summary.finish(writer, started)


def _store_members(
    bulk: BulkConnection,
    members: list[_Member],
    summary: ImportSummary,
    rejects: list[Reject],
    consent_source: str,
) -> None:
    if not members:
        return
    bulk.begin()
    try:
        idents = {(i.kind.value, i.value) for m in members for i in (m.ref, *m.identities)}
        bulk.stage(
            "stage_ident",
            pa.table({"kind": [k for k, _ in idents], "value": [v for _, v in idents]}),
        )
        owned = bulk.arrow(
            "SELECT s.kind, s.value, i.customer_id, c.enrolled FROM stage_ident s "
            "JOIN identity i ON i.kind = s.kind AND i.value = s.value JOIN customer c ON c.id = i.customer_id"
        )
        owner = {
            (k, v): (cid, bool(enrolled))
            for k, v, cid, enrolled in zip(
                *(owned.column(c).to_pylist() for c in owned.column_names), strict=True
            )
        }
        new: list[tuple[_Member, int | None]] = []
        for m in members:
            if (m.ref.kind.value, m.ref.value) in owner:
                summary.already += 1
                continue
            holders = {
                owner[(i.kind.value, i.value)]
                for i in m.identities
                if (i.kind.value, i.value) in owner
            }
            if len({cid for cid, _ in holders}) > 1:
                rejects.append(
                    Reject(
                        m.line,
                        "email",
                        f"the identifiers belong to different customers ({', '.join(str(c) for c, _ in sorted(holders))})",
                        m.row,
                    )
                )
                continue
            if holders:
                cid, enrolled = holders.pop()
                if enrolled:
                    kind = next(
                        i.kind.value
                        for i in m.identities
                        if owner.get((i.kind.value, i.value), (None,))[0] == cid
                    )
                    rejects.append(
                        Reject(m.line, kind, f"already belongs to customer {cid}", m.row)
                    )
                    continue
                new.append((m, cid))  # enrol the recognised profile
            else:
                new.append((m, None))
        fresh = [m for m, cid in new if cid is None]
        ids = iter(bulk.allocate_ids("customer", len(fresh)))
        assigned = [(m, cid if cid is not None else next(ids)) for m, cid in new]
        _write(bulk, assigned, owner, consent_source)
        bulk.commit()
    except BaseException:
        bulk.rollback()
        raise
    summary.new += len(fresh)
    summary.updated += len(new) - len(fresh)


def _write(
    bulk: BulkConnection,
    assigned: list[tuple[_Member, int]],
    owner: dict[tuple[str, str], tuple[int, bool]],
    consent_source: str,
) -> None:
    if not assigned:
        return
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    now_sql = f"CAST('{now}+00' AS TIMESTAMPTZ)" if bulk.dialect == "postgresql" else f"'{now}'"
    day = (
        (lambda c: c) if bulk.dialect == "postgresql" else (lambda c: f"strftime('%Y-%m-%d', {c})")
    )
    rows = pa.Table.from_pylist(
        [{"id": cid, **m.fields} for m, cid in assigned],
        schema=pa.schema(
            [
                ("id", pa.int64()),
                ("name", pa.string()),
                ("name_key", pa.string()),
                ("given_name", pa.string()),
                ("family_name", pa.string()),
                ("language", pa.string()),
                ("birthday", pa.date32()),
                ("relationship_start", pa.date32()),
            ]
        ),
    )
    bulk.stage("stage_member", rows)
    # Recognised profiles that enrol: they keep their id (and purchase history) and gain a name.
    bulk.execute(
        "UPDATE customer SET name = s.name, name_key = s.name_key, given_name = s.given_name, family_name = s.family_name, "
        f"language = s.language, birthday = {day('s.birthday')}, enrolled = true, updated_at = {now_sql} "
        "FROM stage_member s WHERE customer.id = s.id"
    )
    bulk.execute(
        "INSERT INTO customer (id, kind, status, enrolled, name, name_key, given_name, family_name, language, birthday, "
        "relationship_start, created_at, updated_at) "
        f"SELECT id, 'person', 'active', true, name, name_key, given_name, family_name, language, {day('birthday')}, "
        f"{day('relationship_start')}, {now_sql}, {now_sql} FROM stage_member s "
        "WHERE NOT EXISTS (SELECT 1 FROM customer c WHERE c.id = s.id)"
    )
    identities = [
        {
            "customer_id": cid,
            "kind": i.kind.value,
            "value": i.value,
            "display": i.display,
            "is_primary": i.kind is not IdentityKind.EXTERNAL,
        }
        for m, cid in assigned
        for i in (m.ref, *m.identities)
        if (i.kind.value, i.value) not in owner
    ]
    if identities:
        bulk.stage("stage_member_identity", pa.Table.from_pylist(identities))
        bulk.execute(
            "INSERT INTO identity (customer_id, kind, value, display, label, is_primary, created_at) "
            f"SELECT customer_id, kind, value, display, NULL, is_primary, {now_sql} FROM stage_member_identity WHERE true "
            "ON CONFLICT (kind, value) DO NOTHING"
        )
    addresses = [
        {
            "customer_id": cid,
            "street": m.address[0],
            "postal_code": m.address[1],
            "city": m.address[2],
        }
        for m, cid in assigned
        if m.address
    ]
    if addresses:
        bulk.stage("stage_member_address", pa.Table.from_pylist(addresses))
        bulk.execute(
            "INSERT INTO address (customer_id, kind, street, postal_code, city, country, is_primary) "
            "SELECT customer_id, 'home', street, postal_code, city, 'FI', true FROM stage_member_address"
        )
    consents = [
        {
            "customer_id": cid,
            "purpose": purpose,
            "channel": channel,
            "status": status,
            "effective_at": m.consent_at.strftime("%Y-%m-%d %H:%M:%S.%f"),
            "note": f"line {m.line}",
        }
        for m, cid in assigned
        for purpose, channel, status in m.consents
    ]
    if consents:
        # Each decision as `privacy.service.set_consent` records it, the source naming the import.
        bulk.stage("stage_member_consent", pa.Table.from_pylist(consents))
        at = (
            "CAST(effective_at || '+00' AS TIMESTAMPTZ)"
            if bulk.dialect == "postgresql"
            else "effective_at"
        )
        bulk.execute(
            "INSERT INTO consent_event (customer_id, purpose, channel, status, source, effective_at, recorded_at, note) "
            f"SELECT customer_id, purpose, channel, status, {sql_text(consent_source[:100])}, {at}, {now_sql}, note "
            "FROM stage_member_consent"
        )
