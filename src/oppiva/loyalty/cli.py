"""`oppiva loyalty ...`: programmes, members, balances, statements, adjustments and expiry."""

from __future__ import annotations

import csv
import sys
import uuid
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from oppiva.cli.common import actor, audit, console, fail, print_json, unit_of_work
from oppiva.db import utcnow
from oppiva.loyalty import ledger, service, tiers
from oppiva.loyalty.models import ProgrammeKind
from oppiva.loyalty.schemas import ProgrammeOut, tier_fields

app = typer.Typer(
    help="Loyalty programmes, members, balances and statements.", no_args_is_help=True
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
Key = Annotated[str, typer.Argument(help="The programme's key.")]
CustomerId = Annotated[int, typer.Argument(help="The customer's id.")]
STATEMENT_COLUMNS = ("at", "kind", "points", "balance", "rule", "reason", "staff", "receipt_id")


@app.command("programmes")
def programmes_command(ctx: typer.Context, json: JsonFlag = False) -> None:
    """Every programme with its number of members."""
    with unit_of_work(ctx) as session:
        data = [ProgrammeOut.of(p, n).model_dump() for p, n in service.programmes(session)]
    if json:
        print_json(data)
        return
    table = Table("key", "name", "kind", "members", "rules")
    for row in data:
        table.add_row(
            str(row["key"]),
            str(row["name"]),
            str(row["kind"]),
            f"{row['members']:,}",
            "yes" if row["has_rules"] else "none",
        )
    console.print(table)


def _read(path: Path, option: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"{option} {str(path)!r}: cannot be read ({exc.__class__.__name__})") from None


@app.command()
def create(
    ctx: typer.Context,
    key: Key,
    name: Annotated[str, typer.Argument(help="The programme's name.")],
    kind: Annotated[ProgrammeKind, typer.Option(help="open (joined) or silent.")] = (
        ProgrammeKind.OPEN
    ),
    rules: Annotated[
        Path | None, typer.Option(help="The earning rules, a YAML or JSON file.")
    ] = None,
) -> None:
    """Create a programme, with its earning rules."""
    text = _read(rules, "--rules") if rules is not None else None
    with unit_of_work(ctx) as session:
        ledger.create_programme(session, key, name, kind=kind)
        service.set_rules(session, key, text)
        audit(session, "loyalty programme created", key=key, kind=str(kind))
    console.print(f"Programme {key} created.", markup=False)


@app.command()
def join(ctx: typer.Context, key: Key, customer_id: CustomerId) -> None:
    """Make the customer a member of the programme."""
    with unit_of_work(ctx) as session:
        membership = ledger.join(session, key, customer_id)
        audit(session, "loyalty.join", [customer_id], programme=key)
        number = membership.member_number
    console.print(f"Customer {customer_id} is member {number} of {key}.", markup=False)


@app.command()
def balance(ctx: typer.Context, key: Key, customer_id: CustomerId, json: JsonFlag = False) -> None:
    """The member's points: available, pending and how they came and went."""
    with unit_of_work(ctx) as session:
        points = vars(ledger.balance(session, key, customer_id))
        points.update(tier_fields(tiers.status(session, key, customer_id, utcnow())))
        audit(session, "loyalty.balance.read", [customer_id], programme=key)
    if json:
        print_json(points)
        return
    for name, value in points.items():
        if value is not None:
            console.print(f"{name}: {value}", markup=False)


@app.command("tiers")
def tiers_command(
    ctx: typer.Context,
    key: Key,
    set_file: Annotated[
        Path | None,
        typer.Option("--set", help="Set the tier definitions from a YAML or JSON file."),
    ] = None,
    json: JsonFlag = False,
) -> None:
    """The programme's tiers, lowest first; --set replaces them."""
    with unit_of_work(ctx) as session:
        if set_file is not None:
            text = _read(set_file, "--set")
            tiers.set_tiers(session, key, text)
            audit(session, "loyalty tiers set", key=key)
        data = tiers.dump_definitions(tiers.get_tiers(session, key))
    if json:
        print_json(data)
        return
    columns = ("key", "name", "threshold", "measure", "period_months", "grace_months", "multiplier")
    table = Table(*columns)
    for row in data:
        table.add_row(*(str(row[c]) for c in columns))
    console.print(table)


@app.command()
def statement(
    ctx: typer.Context,
    key: Key,
    customer_id: CustomerId,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV instead of a table.")] = False,
) -> None:
    """Every earning, spend, expiry, reversal and adjustment of the member, with the balance."""
    with unit_of_work(ctx) as session:
        entries = ledger.statement(session, key, customer_id)
        audit(session, "loyalty.statement.read", [customer_id], programme=key)
    if as_csv:
        writer = csv.DictWriter(sys.stdout, STATEMENT_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(entries)
        return
    table = Table(*STATEMENT_COLUMNS)
    for entry in entries:
        table.add_row(*("" if entry[c] is None else str(entry[c]) for c in STATEMENT_COLUMNS))
    console.print(table)


@app.command(context_settings={"ignore_unknown_options": True})
def adjust(
    ctx: typer.Context,
    key: Key,
    customer_id: CustomerId,
    points: Annotated[int, typer.Argument(help="Points to add, or (negative) to deduct.")],
    reason: Annotated[str, typer.Option(help="Why, in words the member can read.")],
    staff: Annotated[str, typer.Option(help="Who made the correction.")],
) -> None:
    """A correction by staff: positive points are spendable at once; negative ones are taken
    from the available points (refused when short)."""
    with unit_of_work(ctx) as session:
        ledger.adjust(
            session,
            key,
            customer_id,
            points,
            reason=reason,
            staff=staff,
            source="cli",
            external_id=f"{actor()}:{uuid.uuid4()}",
        )
        audit(session, "loyalty.adjust", [customer_id], programme=key, points=points)
    console.print(f"Adjusted {customer_id} in {key} by {points}.", markup=False)


@app.command()
def expire(ctx: typer.Context) -> None:
    """Record the expiry of every lot past its date (running it again records nothing new)."""
    with unit_of_work(ctx) as session:
        expired = ledger.expire(session, utcnow())
        total = sum(points for _, points in expired)
        if expired:
            audit(session, "loyalty.expire", lots=len(expired), points=total)
    console.print(f"Expired {total} points from {len(expired)} lots.", markup=False)


# --- rewards, redemptions and vouchers ---


# --- clubs ---


# --- top-customer events ---


# --- silent programmes, budgets and behaviour ---
