"""`oppiva consent ...`: consent, preferences and the contact check from the command line."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from oppiva.cli.common import (
    audit,
    console,
    fail,
    moment_option,
    print_json,
    unit_of_work,
)
from oppiva.privacy import service
from oppiva.privacy.models import ContactChannel, Purpose
from oppiva.privacy.schemas import ConsentOut

app = typer.Typer(
    help="Consent per purpose and channel, preferences, the contact check.", no_args_is_help=True
)


@app.command("set")
def set_(
    ctx: typer.Context,
    customer_id: int,
    purpose: Annotated[str, typer.Argument(help="marketing, profiling or personalised_offers.")],
    channel: Annotated[str, typer.Argument(help="email, sms, post, phone, push, or all.")],
    status: Annotated[str, typer.Argument(help="granted, denied or withdrawn.")],
    source: Annotated[str, typer.Option(help="Where the decision came from.")] = "cli",
    at: Annotated[
        str | None, typer.Option(help="When it takes effect (ISO, with time zone).")
    ] = None,
    note: Annotated[str | None, typer.Option(help="A note kept with the decision.")] = None,
) -> None:
    """Record a consent decision."""
    effective_at = moment_option(at, "--at")
    with unit_of_work(ctx) as session:
        events = service.set_consent(
            session,
            customer_id,
            purpose=purpose,
            channel=channel,
            status=status,
            source=source,
            effective_at=effective_at,
            note=note,
        )
        audit(session, "consent.write", [customer_id], purpose=purpose)
        channels = ", ".join(e.channel for e in events)
        console.print(f"Customer {customer_id}: {purpose} by {channels} {status}.")


@app.command()
def show(
    ctx: typer.Context,
    customer_id: int,
    history: Annotated[
        bool, typer.Option("--history", help="Every decision, oldest first.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The consent in effect per purpose and channel, and the preferences."""
    with unit_of_work(ctx) as session:
        audit(session, "consent.read", [customer_id])
        if history:
            events = service.consent_history(session, customer_id)
            if as_json:
                print_json([ConsentOut.model_validate(e).model_dump(mode="json") for e in events])
                return
            table = Table("effective", "purpose", "channel", "status", "source")
            for e in events:
                table.add_row(
                    e.effective_at.isoformat(timespec="seconds"),
                    e.purpose,
                    e.channel,
                    e.status,
                    e.source,
                )
            console.print(table)
            return
        state = service.consent_state(session, customer_id)
        prefs = service.preferences(session, customer_id)
        if as_json:
            print_json(
                {
                    "consents": {
                        f"{p.value}/{c.value}": (e.status if e else "unknown")
                        for (p, c), e in state.items()
                    },
                    "preferences": prefs,
                }
            )
            return
        table = Table("purpose", *[c.value for c in ContactChannel])
        for p in Purpose:
            cells = [state[(p, c)] for c in ContactChannel]
            table.add_row(p.value, *[e.status if e else "-" for e in cells])
        console.print(table)
        console.print(", ".join(f"{k}: {'yes' if v else 'no'}" for k, v in prefs.items()))


@app.command()
def check(
    ctx: typer.Context,
    customer_id: int,
    purpose: str,
    channel: str,
    at: Annotated[
        str | None, typer.Option(help="The moment to check (ISO, with time zone).")
    ] = None,
) -> None:
    """May the customer be contacted for PURPOSE on CHANNEL? Exit code 0 yes, 1 no."""
    moment = moment_option(at, "--at")
    with unit_of_work(ctx) as session:
        decision = service.can_contact(session, customer_id, purpose, channel, moment)
        audit(session, "consent.check", [customer_id], purpose=purpose, channel=channel)
    console.print(("allowed: " if decision else "not allowed: ") + decision.reason, markup=False)
    if not decision:
        raise typer.Exit(1)


@app.command()
def prefer(
    ctx: typer.Context,
    customer_id: int,
    name: Annotated[str, typer.Argument(help="remember_me or no_offers.")],
    value: Annotated[str, typer.Argument(help="on or off.")],
    source: Annotated[str, typer.Option(help="Where the wish came from.")] = "cli",
) -> None:
    """Set a privacy preference; `remember_me off` also forgets the optional timeline."""
    if value not in ("on", "off"):
        raise fail(f"value: say on or off, not {value!r}")
    with unit_of_work(ctx) as session:
        service.set_preference(session, customer_id, name=name, value=value == "on", source=source)
        audit(session, "preferences.write", [customer_id], name=name)
    console.print(f"Customer {customer_id}: {name} {value}.")
