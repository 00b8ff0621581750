"""`oppiva loyalty ...`: programmes, members, balances, statements, adjustments and expiry."""

from __future__ import annotations

import csv
import json
import sys
import uuid
from dataclasses import asdict
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from oppiva.cli.common import (
    actor,
    audit,
    console,
    fail,
    moment_option,
    print_json,
    unit_of_work,
)
from oppiva.db import utcnow
from oppiva.loyalty import (
    behaviour,
    clubs,
    events,
    ledger,
    rewards,
    service,
    silent,
    statement_formats,
    tiers,
)
from oppiva.loyalty import vouchers as voucher_service
from oppiva.loyalty.models import ClubMembershipSource, ProgrammeKind
from oppiva.loyalty.schemas import (
    BenefitOut,
    BudgetOut,
    ClubMembersOut,
    ClubOut,
    ClubSuggestionsOut,
    EventOut,
    GuestListOut,
    GuestOut,
    OfferOut,
    ProgrammeOut,
    RankedOut,
    RewardOut,
    SilentSettingsOut,
    VoucherOut,
    tier_fields,
)

app = typer.Typer(
    help="Loyalty programmes, members, balances and statements.", no_args_is_help=True
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
Key = Annotated[str, typer.Argument(help="The programme's key.")]
CustomerId = Annotated[int, typer.Argument(help="The customer's id.")]


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


class StatementFormat(StrEnum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"
    HTML = "html"


@app.command()
def statement(
    ctx: typer.Context,
    key: Key,
    customer_id: CustomerId,
    fmt: Annotated[
        StatementFormat,
        typer.Option("--format", help="table, json, csv or html (a printable page)."),
    ] = StatementFormat.TABLE,
    as_csv: Annotated[bool, typer.Option("--csv", help="Short for --format csv.")] = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file, not stdout.")
    ] = None,
) -> None:
    """Every earning, spend, expiry, reversal and adjustment of the member, with the rule that
    caused it and the balance; redemptions name the reward and the voucher."""
    fmt = StatementFormat.CSV if as_csv else fmt
    if output is not None and fmt == StatementFormat.TABLE:
        raise fail("--output: give --format json, csv or html with it")
    with unit_of_work(ctx) as session:
        document = voucher_service.member_statement(session, key, customer_id)
        audit(session, "loyalty.statement.read", [customer_id], programme=key, format=str(fmt))
        text = (
            statement_formats.to_html(document)
            if fmt == StatementFormat.HTML
            else statement_formats.to_csv(document.entries)
            if fmt == StatementFormat.CSV
            else None
        )
    if fmt == StatementFormat.JSON:
        text = json.dumps(document.entries, ensure_ascii=False, indent=2, default=str) + "\n"
    if text is not None:
        if output is None:
            sys.stdout.write(text)
            return
        try:
            output.write_text(text, encoding="utf-8", newline="")
        except OSError as exc:
            raise fail(
                f"--output {str(output)!r}: cannot be written ({exc.__class__.__name__})"
            ) from None
        console.print(f"Statement of {customer_id} in {key} written to {output}.", markup=False)
        return
    table = Table("at", "kind", "points", "balance", "because", "by")
    for entry in document.entries:
        table.add_row(
            entry["at"][:16].replace("T", " "),
            entry["kind"],
            str(entry["points"]),
            str(entry["balance"]),
            statement_formats.because(entry),
            entry["staff"] or "",
        )
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


def _request_option(value: str | None, option: str) -> tuple[str, str]:
    """`SOURCE:EXTERNAL_ID` as the pair; without one, a request of its own by this user."""
    if value is None:
        return "cli", f"{actor()}:{uuid.uuid4()}"
    source, colon, external_id = value.partition(":")
    if not colon or not source or not external_id:
        raise fail(f"{option} {value!r}: give SOURCE:EXTERNAL_ID, e.g. till-3:R-1001")
    return source, external_id


def _print_voucher(voucher: VoucherOut) -> None:
    chosen = f" ({voucher.option_name})" if voucher.option_name else ""
    console.print(f"Voucher {voucher.code}: {voucher.reward_name}{chosen}", markup=False)
    console.print(
        f"{voucher.status}, {voucher.points} points, customer {voucher.customer_id} in "
        f"{voucher.programme}, valid until {voucher.expires_at.isoformat()}",
        markup=False,
    )
    if voucher.used_on:
        console.print(f"used {voucher.used_at} on {voucher.used_on}", markup=False)
    if voucher.cancelled_at:
        console.print(f"cancelled {voucher.cancelled_at}: {voucher.cancel_reason}", markup=False)


@app.command("rewards")
def rewards_command(
    ctx: typer.Context,
    key: Key,
    set_file: Annotated[
        Path | None,
        typer.Option("--set", help="Create or update rewards from a YAML or JSON file."),
    ] = None,
    retire: Annotated[
        list[str] | None, typer.Option("--retire", help="Retire this reward (repeatable).")
    ] = None,
    member: Annotated[
        int | None,
        typer.Option("--for", help="As this member sees them: may they redeem, why not."),
    ] = None,
    include_retired: Annotated[bool, typer.Option("--all", help="Also retired rewards.")] = False,
    json: JsonFlag = False,
) -> None:
    """The programme's reward catalogue; --set creates or updates from a file, --retire takes
    rewards out, --for shows what a member may redeem and why not otherwise."""
    with unit_of_work(ctx) as session:
        if set_file is not None:
            kept = rewards.set_rewards(session, key, _read(set_file, "--set"))
            audit(session, "loyalty rewards set", key=key, rewards=[r.key for r in kept])
        for reward_key in retire or []:
            rewards.retire(session, key, reward_key)
            audit(session, "loyalty reward retired", key=key, reward=reward_key)
        if member is not None:
            offers = [OfferOut.of(o) for o in rewards.offers(session, key, member)]
            audit(session, "loyalty.rewards.read", [member], programme=key)
        else:
            found = rewards.catalogue(session, key, include_retired=include_retired)
            catalogue = [RewardOut.of(reward) for reward in found]
    if member is not None:
        if json:
            print_json([o.model_dump(mode="json") for o in offers])
            return
        table = Table("key", "name", "cost", "redeemable", "why not")
        for o in offers:
            table.add_row(
                o.reward.key,
                o.reward.name,
                str(o.reward.cost_points),
                "yes" if o.redeemable else "no",
                "; ".join(o.reasons),
            )
        console.print(table)
        return
    if json:
        print_json([r.model_dump(mode="json") for r in catalogue])
        return
    table = Table("key", "name", "kind", "cost", "stock left", "limit", "tiers", "options", "state")
    for r in catalogue:
        limit = (
            ""
            if r.limit_per_member is None
            else f"{r.limit_per_member}"
            + (f" in {r.limit_period_days} d" if r.limit_period_days else " ever")
        )
        table.add_row(
            r.key,
            r.name,
            r.kind + (f" ({r.partner})" if r.partner else ""),
            str(r.cost_points),
            "unlimited" if r.stock_left is None else f"{r.stock_left} of {r.stock}",
            limit,
            ", ".join(r.tiers or []),
            ", ".join(option.key for option in r.options or []),
            "retired" if r.retired_at else "active",
        )
    console.print(table)


@app.command()
def redeem(
    ctx: typer.Context,
    key: Key,
    customer_id: CustomerId,
    reward: Annotated[str, typer.Argument(help="The reward's key.")],
    option: Annotated[
        str | None, typer.Option(help="The benefit chosen, when the reward offers a choice.")
    ] = None,
    request: Annotated[
        str | None,
        typer.Option(help="SOURCE:EXTERNAL_ID naming the request, so a repeat redeems once."),
    ] = None,
    json: JsonFlag = False,
) -> None:
    """Spend the reward's points and print its single-use voucher."""
    source, external_id = _request_option(request, "--request")
    with unit_of_work(ctx) as session:
        voucher = rewards.redeem(
            session,
            key,
            customer_id,
            reward,
            option=option,
            source=source,
            external_id=external_id,
        )
        audit(session, "loyalty.redeem", [customer_id], programme=key, reward=reward)
        shown = VoucherOut.of(voucher_service.view(session, voucher))
    if json:
        print_json(shown.model_dump(mode="json"))
        return
    _print_voucher(shown)


@app.command()
def voucher(
    ctx: typer.Context,
    code: Annotated[str, typer.Argument(help="The voucher's code (hyphens and case ignored).")],
    use: Annotated[bool, typer.Option("--use", help="Use it on the --receipt.")] = False,
    receipt: Annotated[
        str | None, typer.Option(help="SOURCE:EXTERNAL_ID of the receipt it is used on.")
    ] = None,
    cancel: Annotated[
        bool, typer.Option("--cancel", help="Cancel it: points and stock come back.")
    ] = False,
    reason: Annotated[str | None, typer.Option(help="Why it is cancelled.")] = None,
    json: JsonFlag = False,
) -> None:
    """Check a voucher (exit 1 unless it is valid), or use it on a receipt, or cancel it."""
    if use and cancel:
        raise fail("--use and --cancel: choose one")
    if use and receipt is None:
        raise fail("--receipt: required with --use, as SOURCE:EXTERNAL_ID")
    if cancel and reason is None:
        raise fail("--reason: required with --cancel")
    with unit_of_work(ctx) as session:
        if use:
            source, external_id = _request_option(receipt, "--receipt")
            used = voucher_service.use(session, code, source=source, external_id=external_id)
            shown: VoucherOut | None = VoucherOut.of(voucher_service.view(session, used))
            verdict, message = "used", f"used on {source}/{external_id}"
            action = "loyalty.voucher.use"
        elif cancel:
            cancelled = voucher_service.cancel(session, code, reason=reason or "", staff=actor())
            shown = VoucherOut.of(voucher_service.view(session, cancelled))
            verdict, message = "cancelled", "cancelled; points and stock returned"
            action = "loyalty.voucher.cancel"
        else:
            result = voucher_service.check(session, code)
            shown = VoucherOut.of(result.voucher) if result.voucher is not None else None
            verdict, message = result.verdict, result.message
            action = "loyalty.voucher.read"
        if shown is not None:
            audit(session, action, [shown.customer_id], voucher=shown.code)
    if json:
        print_json(
            {
                "verdict": verdict,
                "message": message,
                "voucher": shown.model_dump(mode="json") if shown else None,
            }
        )
    else:
        console.print(f"{verdict}: {message}", markup=False)
        if shown is not None:
            _print_voucher(shown)
    if not (use or cancel) and verdict != "valid":
        raise typer.Exit(1)


@app.command()
def vouchers(ctx: typer.Context, key: Key, customer_id: CustomerId, json: JsonFlag = False) -> None:
    """The member's vouchers, the newest first."""
    with unit_of_work(ctx) as session:
        found = [VoucherOut.of(v) for v in voucher_service.vouchers(session, key, customer_id)]
        audit(session, "loyalty.vouchers.read", [customer_id], programme=key)
    if json:
        print_json([v.model_dump(mode="json") for v in found])
        return
    table = Table("code", "reward", "points", "status", "issued", "expires")
    for v in found:
        table.add_row(
            v.code,
            v.reward_name + (f" ({v.option_name})" if v.option_name else ""),
            str(v.points),
            v.status,
            f"{v.issued_at:%Y-%m-%d}",
            f"{v.expires_at:%Y-%m-%d %H:%M}",
        )
    console.print(table)


# --- clubs ---

clubs_app = typer.Typer(
    help="Clubs: definitions, joining and leaving, suggestions and member lists.",
    no_args_is_help=True,
)
app.add_typer(clubs_app, name="clubs")
ClubKey = Annotated[str, typer.Argument(help="The club's key.")]
Channel = Annotated[str, typer.Option(help="The channel: email, sms, post, phone or push.")]


@clubs_app.command("list")
def clubs_list(ctx: typer.Context, json: JsonFlag = False) -> None:
    """Every club with its number of members."""
    with unit_of_work(ctx) as session:
        data = [ClubOut.of(c, n).model_dump(mode="json") for c, n in clubs.clubs(session)]
    if json:
        print_json(data)
        return
    table = Table("key", "name", "purpose", "members", "suggests")
    for row in data:
        table.add_row(
            row["key"],
            row["name"],
            row["purpose"],
            f"{row['members']:,}",
            "yes" if row["suggest"] else "no",
        )
    console.print(table)


@clubs_app.command("set")
def clubs_set(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A YAML or JSON file: one club or a list.")],
) -> None:
    """Create or update the clubs of the file by key; members stay."""
    text = _read(file, "FILE")
    with unit_of_work(ctx) as session:
        saved = clubs.set_clubs(session, clubs.load_definitions(text))
        keys = [club.key for club in saved]
        audit(session, "loyalty clubs set", clubs=keys)
    console.print(f"Clubs set: {', '.join(keys)}.", markup=False)


@clubs_app.command("join")
def clubs_join(
    ctx: typer.Context,
    key: ClubKey,
    customer_id: CustomerId,
    channel: Annotated[
        list[str], typer.Option(help="A channel the club may use (repeat for more).")
    ],
    source: Annotated[str, typer.Option(help="Where the customer joined (till, web...).")],
    suggested: Annotated[
        bool, typer.Option("--suggested", help="They accepted an invitation.")
    ] = False,
) -> None:
    """The customer joins and consents to the club's communications on the channels."""
    how = ClubMembershipSource.SUGGESTION if suggested else ClubMembershipSource.INTEREST
    with unit_of_work(ctx) as session:
        clubs.join(session, key, customer_id, channel, source=source, how=how)
        audit(session, "loyalty.club.join", [customer_id], club=key)
    console.print(f"Customer {customer_id} is a member of club {key}.", markup=False)


@clubs_app.command("leave")
def clubs_leave(
    ctx: typer.Context,
    key: ClubKey,
    customer_id: CustomerId,
    reason: Annotated[str | None, typer.Option(help="Why, if they said.")] = None,
) -> None:
    """End the customer's membership (kept as history); no consent changes."""
    with unit_of_work(ctx) as session:
        clubs.leave(session, key, customer_id, reason=reason)
        audit(session, "loyalty.club.leave", [customer_id], club=key)
    console.print(f"Customer {customer_id} left club {key}.", markup=False)


@clubs_app.command("decline")
def clubs_decline(
    ctx: typer.Context,
    key: ClubKey,
    customer_id: CustomerId,
    source: Annotated[str, typer.Option(help="Where they said no.")],
) -> None:
    """The customer said no to the club: it never suggests them again."""
    with unit_of_work(ctx) as session:
        clubs.decline(session, key, customer_id, source=source)
        audit(session, "loyalty.club.decline", [customer_id], club=key)
    console.print(f"Customer {customer_id} declined club {key}.", markup=False)


def _left_out(counts: dict[str, int]) -> None:
    for reason, count in counts.items():
        console.print(f"left out: {count:,} ({reason})", markup=False)


@clubs_app.command("suggest")
def clubs_suggest(
    ctx: typer.Context,
    key: ClubKey,
    channel: Channel = "email",
    limit: Annotated[int | None, typer.Option(min=1, help="At most this many.")] = None,
    json: JsonFlag = False,
) -> None:
    """Customers to invite, from their purchases; none of them becomes a member."""
    with unit_of_work(ctx) as session:
        found = clubs.suggest(session, key, channel, limit=limit)
        audit(
            session,
            "loyalty.club.suggestions.read",
            [s.customer_id for s in found.customers] or [None],
            club=key,
        )
    if json:
        print_json(ClubSuggestionsOut.model_validate(asdict(found)).model_dump(mode="json"))
        return
    table = Table("customer_id", "purchases", "last_purchase_at")
    for s in found.customers:
        table.add_row(str(s.customer_id), str(s.purchases), s.last_purchase_at.isoformat())
    console.print(table)
    _left_out(found.left_out)


@clubs_app.command("members")
def clubs_members(
    ctx: typer.Context,
    key: ClubKey,
    channel: Channel = "email",
    json: JsonFlag = False,
) -> None:
    """The members the club may write to on the channel now; the others counted by reason."""
    with unit_of_work(ctx) as session:
        found = clubs.members(session, key, channel)
        audit(
            session,
            "loyalty.club.members.read",
            [m.customer_id for m in found.members] or [None],
            club=key,
        )
    if json:
        print_json(ClubMembersOut.model_validate(asdict(found)).model_dump(mode="json"))
        return
    table = Table("customer_id", "joined_at", "source")
    for m in found.members:
        table.add_row(str(m.customer_id), m.joined_at.isoformat(), m.source)
    console.print(table)
    _left_out(found.left_out)


# --- top-customer events ---

events_app = typer.Typer(
    help="Events for a store's best customers: ranking, invitations, answers, attendance.",
    no_args_is_help=True,
)
app.add_typer(events_app, name="events")
EventKey = Annotated[str, typer.Argument(help="The event's key.")]


@events_app.command("create")
def events_create(
    ctx: typer.Context,
    key: EventKey,
    name: Annotated[str, typer.Argument(help="The event's name.")],
    store: Annotated[str, typer.Option(help="The store's outlet code.")],
    starts_at: Annotated[str, typer.Option(help="When, with a time zone: 2026-12-03T18:00+02:00.")],
    capacity: Annotated[int, typer.Option(help="Places for guests.")],
    invite: Annotated[int, typer.Option(help="How many of the best customers to invite.")],
    purpose: Annotated[str, typer.Option(help="marketing or personalised_offers.")] = "marketing",
    channel: Channel = "email",
) -> None:
    """Create an event at a store."""
    moment = moment_option(starts_at, "--starts-at")
    with unit_of_work(ctx) as session:
        events.create_event(
            session,
            key,
            name,
            store=store,
            starts_at=moment,
            capacity=capacity,
            invite_count=invite,
            purpose=purpose,
            channel=channel,
        )
        audit(session, "loyalty.event.create", event=key)
    console.print(f"Event {key} created.", markup=False)


@events_app.command("list")
def events_list(ctx: typer.Context, json: JsonFlag = False) -> None:
    """Every event, soonest first, with its guests counted by answer."""
    with unit_of_work(ctx) as session:
        data = [
            EventOut.of(events.guests(session, e.key)).model_dump(mode="json")
            for e, _ in events.events(session)
        ]
    if json:
        print_json(data)
        return
    columns = ("key", "name", "store", "starts_at", "capacity", "invited", "yes", "attended")
    table = Table(*columns)
    for row in data:
        table.add_row(*(str(row[c]) for c in columns))
    console.print(table)


@events_app.command("rank")
def events_rank(
    ctx: typer.Context,
    key: EventKey,
    limit: Annotated[int, typer.Option(min=1, help="The best this many.")] = 100,
    json: JsonFlag = False,
) -> None:
    """The store's customers by value, best first: CLV where the value analysis has it, else
    the 12-month spend at the store."""
    with unit_of_work(ctx) as session:
        ranked = events.rank(session, key, limit=limit)
        audit(
            session,
            "loyalty.event.ranking.read",
            [r.customer_id for r in ranked] or [None],
            event=key,
        )
    data = [RankedOut.of(r).model_dump(mode="json") for r in ranked]
    if json:
        print_json(data)
        return
    table = Table("rank", "customer_id", "measure", "value", "enrolled")
    for row in data:
        table.add_row(
            *(str(row[c]) for c in ("rank", "customer_id", "measure", "value")),
            "yes" if row["enrolled"] else "no",
        )
    console.print(table)


@events_app.command("invite")
def events_invite(ctx: typer.Context, key: EventKey, json: JsonFlag = False) -> None:
    """Invite the best customers who may be contacted, up to the event's invite count
    (running it again tops the list up)."""
    with unit_of_work(ctx) as session:
        done = events.invite(session, key)
        audit(
            session,
            "loyalty.event.invite",
            [g.customer_id for g in done.invited] or [None],
            event=key,
        )
        invited = [GuestOut.of(g).model_dump(mode="json") for g in done.invited]
    if json:
        print_json(
            {
                "event": key,
                "invited": invited,
                "already_invited": done.already_invited,
                "left_out": done.left_out,
            }
        )
        return
    console.print(
        f"Invited {len(invited)} to {key} ({done.already_invited} invited before).", markup=False
    )
    _left_out(done.left_out)


@events_app.command("rsvp")
def events_rsvp(
    ctx: typer.Context,
    key: EventKey,
    customer_id: CustomerId,
    answer: Annotated[str, typer.Argument(help="yes, no or maybe.")],
) -> None:
    """Record the guest's answer; a yes beyond the capacity is refused."""
    with unit_of_work(ctx) as session:
        events.rsvp(session, key, customer_id, answer)
        audit(session, "loyalty.event.rsvp", [customer_id], event=key, answer=answer)
    console.print(f"Customer {customer_id} answered {answer} to {key}.", markup=False)


@events_app.command("attend")
def events_attend(ctx: typer.Context, key: EventKey, customer_id: CustomerId) -> None:
    """Record that the guest came, with the behaviour points it earns."""
    with unit_of_work(ctx) as session:
        done = events.attend(session, key, customer_id)
        audit(session, "loyalty.event.attend", [customer_id], event=key)
        points = [(a.programme, a.points) for a in done.awards if a.visible]
    already = "" if done.recorded else " (recorded before)"
    console.print(f"Customer {customer_id} attended {key}{already}.", markup=False)
    for programme, earned in points:
        console.print(f"{programme}: {earned} points", markup=False)


@events_app.command("guests")
def events_guests(
    ctx: typer.Context,
    key: EventKey,
    json: JsonFlag = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV instead of a table.")] = False,
) -> None:
    """The event's guests by rank, with their answers and visits."""
    with unit_of_work(ctx) as session:
        found = events.guests(session, key)
        audit(
            session,
            "loyalty.event.guests.read",
            [g.customer_id for g in found.guests] or [None],
            event=key,
        )
        out = GuestListOut(
            event=EventOut.of(found), guests=[GuestOut.of(g) for g in found.guests]
        ).model_dump(mode="json")
    if json:
        print_json(out)
        return
    columns = ("rank", "customer_id", "measure", "value", "rsvp", "attended_at")
    if as_csv:
        writer = csv.DictWriter(sys.stdout, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(out["guests"])
        return
    table = Table(*columns)
    for row in out["guests"]:
        table.add_row(*("" if row[c] is None else str(row[c]) for c in columns))
    console.print(table)
    summary = out["event"]
    console.print(
        f"{summary['invited']} invited, {summary['yes']} yes of {summary['capacity']} places, "
        f"{summary['attended']} attended.",
        markup=False,
    )


# --- silent programmes, budgets and behaviour ---


class BehaviourEventName(StrEnum):
    FEEDBACK_GIVEN = "feedback_given"
    REFERRAL = "referral"
    APP_INSTALLED = "app_installed"
    EVENT_ATTENDED = "event_attended"


class BenefitKind(StrEnum):
    DISCOUNT = "discount"
    RELATIONSHIP = "relationship"
    SERVICE = "service"


class Target(StrEnum):
    CONTROL = "control"
    BASELINE = "baseline"


@app.command("behaviour")
def behaviour_command(
    ctx: typer.Context,
    customer_id: CustomerId,
    event: Annotated[BehaviourEventName, typer.Argument(help="What the customer did.")],
    source: Annotated[str, typer.Option(help="Where the event comes from, e.g. app.")] = "cli",
    external_id: Annotated[
        str | None,
        typer.Option(help="The event's id at the source: the same id again earns nothing."),
    ] = None,
    at: Annotated[str | None, typer.Option(help="When, with a time zone; now by default.")] = None,
    json: JsonFlag = False,
) -> None:
    """Award the behaviour points of an event in every programme the customer is a member of."""
    moment = moment_option(at, "--at")
    with unit_of_work(ctx) as session:
        awards = behaviour.award(
            session,
            customer_id,
            str(event),
            source=source,
            external_id=external_id or f"{actor()}:{uuid.uuid4()}",
            at=moment,
        )
        audit(session, "loyalty.behaviour", [customer_id], event=str(event))
    if json:
        print_json([asdict(award) for award in awards])
        return
    if not awards:
        console.print(f"No programme of customer {customer_id} rewards {event}.", markup=False)
    for award in awards:
        hidden = "" if award.visible else " (silent: not shown to the customer)"
        notes = f" ({'; '.join(award.notes)})" if award.notes else ""
        console.print(f"{award.programme}: {award.points} points{notes}{hidden}", markup=False)


@app.command("silent")
def silent_command(
    ctx: typer.Context,
    key: Key,
    criteria: Annotated[
        str | None, typer.Option(help='Whom to select, e.g. "visits_365d >= 20".')
    ] = None,
    control_percent: Annotated[
        int | None, typer.Option(help="Percent of the matching held out as control (0-90).")
    ] = None,
    budget_eur: Annotated[
        str | None, typer.Option("--budget", help="The investment limit in euros.")
    ] = None,
    no_budget: Annotated[bool, typer.Option("--no-budget", help="Remove the limit.")] = False,
    point_value_cents: Annotated[
        str | None, typer.Option(help="What one point is worth, in cents, for the budget.")
    ] = None,
    target: Annotated[
        Target | None, typer.Option(help="control (against the control group) or baseline.")
    ] = None,
    target_eur: Annotated[
        str | None, typer.Option(help="The extra spend the programme is meant to bring.")
    ] = None,
    period_days: Annotated[
        int | None, typer.Option(help="Days of the baseline before selection.")
    ] = None,
    json: JsonFlag = False,
) -> None:
    """A silent programme's selection, control group, budget and target; options change them."""
    with unit_of_work(ctx) as session:
        settings = silent.configure(
            session,
            key,
            criteria=criteria,
            control_percent=control_percent,
            budget_eur=_decimal(budget_eur, "--budget"),
            point_value_cents=_decimal(point_value_cents, "--point-value-cents"),
            target=str(target) if target is not None else None,
            target_eur=_decimal(target_eur, "--target-eur"),
            period_days=period_days,
            clear_budget=no_budget,
        )
        data = SilentSettingsOut.of(key, settings).model_dump(mode="json")
        if any(
            v is not None
            for v in (criteria, control_percent, budget_eur, point_value_cents, target, target_eur)
        ) or (period_days is not None or no_budget):
            audit(session, "loyalty.silent.set", programme=key)
    if json:
        print_json(data)
        return
    for name, value in data.items():
        console.print(f"{name}: {'-' if value is None else value}", markup=False)


def _decimal(value: str | None, option: str) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(value)
    except ArithmeticError:
        raise fail(f"{option}: {value!r} is no number") from None


@app.command("select")
def select_command(ctx: typer.Context, key: Key, json: JsonFlag = False) -> None:
    """Enrol who matches the silent programme's criteria in the latest analysis (anonymous
    profiles included), hold out the control share, end the stints of who no longer matches."""
    with unit_of_work(ctx) as session:
        result = silent.select_members(session, key)
        touched = result.enrolled + result.held_out + result.ended
        audit(session, "loyalty.silent.select", touched or [None], programme=key)
    if json:
        print_json(asdict(result))
        return
    console.print(
        f"{key}: {result.matched:,} match the analysis of {result.analysis_as_of}; "
        f"{len(result.enrolled):,} enrolled, {len(result.held_out):,} held out as control, "
        f"{len(result.ended):,} no longer match; {result.members:,} members, "
        f"{result.control:,} in control.",
        markup=False,
    )


@app.command("benefit")
def benefit_command(
    ctx: typer.Context,
    key: Key,
    benefit: Annotated[str, typer.Argument(help="The benefit's key, e.g. free-delivery.")],
    name: Annotated[str, typer.Option(help="Its name, e.g. Free delivery.")],
    kind: Annotated[BenefitKind, typer.Option(help="discount, relationship or service.")],
    unit_cost: Annotated[str, typer.Option(help="What one costs the business, in euros.")],
) -> None:
    """Create or change a benefit of a silent programme's catalogue."""
    with unit_of_work(ctx) as session:
        silent.set_benefit(
            session,
            key,
            benefit,
            name=name,
            kind=str(kind),
            unit_cost_eur=_decimal(unit_cost, "--unit-cost") or Decimal(0),
        )
        audit(session, "loyalty.benefit.set", programme=key, benefit=benefit)
    console.print(f"Benefit {benefit} of {key} set.", markup=False)


@app.command("benefits")
def benefits_command(ctx: typer.Context, key: Key, json: JsonFlag = False) -> None:
    """A silent programme's benefits catalogue."""
    with unit_of_work(ctx) as session:
        data = [BenefitOut.of(b).model_dump(mode="json") for b in silent.benefits(session, key)]
    if json:
        print_json(data)
        return
    table = Table("key", "name", "kind", "unit cost EUR")
    for row in data:
        table.add_row(row["key"], row["name"], row["kind"], str(row["unit_cost_eur"]))
    console.print(table)


@app.command("grant")
def grant_command(
    ctx: typer.Context,
    key: Key,
    customer_id: CustomerId,
    benefit: Annotated[str, typer.Argument(help="The benefit's key.")],
    quantity: Annotated[int, typer.Option(help="How many.")] = 1,
    external_id: Annotated[
        str | None, typer.Option(help="An id for the grant: the same id again grants nothing.")
    ] = None,
    note: Annotated[str | None, typer.Option(help="Why, for the record.")] = None,
) -> None:
    """Give a member a benefit; refused beyond the programme's budget."""
    with unit_of_work(ctx) as session:
        granted = silent.grant(
            session,
            key,
            customer_id,
            benefit,
            quantity=quantity,
            source="cli",
            external_id=external_id or f"{actor()}:{uuid.uuid4()}",
            note=note,
            staff=actor(),
        )
        audit(session, "loyalty.benefit.grant", [customer_id], programme=key, benefit=benefit)
        cost = Decimal(granted.cost_cents) / 100
    console.print(
        f"Granted {quantity} x {benefit} to {customer_id} in {key}: {cost:.2f} EUR.", markup=False
    )


@app.command("budget")
def budget_command(
    ctx: typer.Context,
    key: Key,
    record: Annotated[
        bool, typer.Option("--record", help="Keep this measure in the budget's history.")
    ] = False,
    json: JsonFlag = False,
) -> None:
    """Investment so far (benefits' cost + points' value) against the result so far."""
    with unit_of_work(ctx) as session:
        report = silent.budget(session, key, record=record)
        if record:
            audit(session, "loyalty.budget.record", programme=key)
    data = BudgetOut.of(report).model_dump(mode="json")
    if json:
        print_json(data)
        return
    for name, value in data.items():
        if name != "history":
            console.print(f"{name}: {'-' if value is None else value}", markup=False)
    if report.history:
        table = Table("at", "members", "investment EUR", "result EUR")
        for row in report.history:
            result = row["result_cents"]
            table.add_row(
                row["at"],
                str(row["members"]),
                f"{row['investment_cents'] / 100:.2f}",
                "-" if result is None else f"{result / 100:.2f}",
            )
        console.print(table)
