"""`oppiva customers ...`: the customer register from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from oppiva.cli.common import actor, audit, console, fail, print_json, unit_of_work
from oppiva.customers import service
from oppiva.customers.models import Customer
from oppiva.customers.schemas import (
    AddressIn,
    CustomerCreate,
    CustomerOut,
    CustomerUpdate,
    IdentifierIn,
    InteractionIn,
    InteractionOut,
    MergeOut,
)
from oppiva.errors import InvalidInput

app = typer.Typer(help="Register, find, merge and erase customers.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _identifier(spec: str) -> IdentifierIn:
    kind, sep, value = spec.partition(":")
    if not sep:
        raise fail(f"--identity {spec!r}: write KIND:VALUE, e.g. card:6012345678 or login:maija")
    return IdentifierIn(kind=kind, value=value)


def _summary(customer: Customer) -> Table:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_row("id", str(customer.id))
    table.add_row("name", customer.name or "")
    table.add_row("kind", customer.kind)
    table.add_row(
        "status",
        customer.status + (f" into {customer.merged_into_id}" if customer.merged_into_id else ""),
    )
    table.add_row("language", customer.language)
    if customer.birthday:
        table.add_row("birthday", customer.birthday.isoformat())
    if customer.business_id:
        table.add_row("business id", customer.business_id)
    table.add_row("customer since", customer.relationship_start.isoformat())
    for ident in customer.identities:
        table.add_row(ident.kind, ident.display + (" (primary)" if ident.is_primary else ""))
    for a in customer.addresses:
        table.add_row(f"address ({a.kind})", f"{a.street}, {a.postal_code} {a.city}, {a.country}")
    return table


@app.command()
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="Full name, or the organisation's name.")],
    email: Annotated[list[str] | None, typer.Option(help="An email address (repeatable).")] = None,
    phone: Annotated[list[str] | None, typer.Option(help="A phone number (repeatable).")] = None,
    card: Annotated[
        list[str] | None, typer.Option(help="A loyalty card number (repeatable).")
    ] = None,
    identity: Annotated[
        list[str] | None, typer.Option(help="Another identity as KIND:VALUE.")
    ] = None,
    organisation: Annotated[
        bool, typer.Option("--organisation", help="An organisation, not a person.")
    ] = False,
    business_id: Annotated[str | None, typer.Option(help="Business id (Y-tunnus).")] = None,
    language: Annotated[str, typer.Option(help="fi, sv or en.")] = "fi",
    birthday: Annotated[str | None, typer.Option(help="YYYY-MM-DD.")] = None,
    street: Annotated[str | None, typer.Option(help="Street address.")] = None,
    postal_code: Annotated[str | None, typer.Option(help="Postal code.")] = None,
    city: Annotated[str | None, typer.Option(help="City.")] = None,
    country: Annotated[str, typer.Option(help="ISO country code.")] = "FI",
    as_json: JsonFlag = False,
) -> None:
    """Register a person or an organisation."""
    given = [_identifier(f"card:{c}") for c in card or []] + [
        _identifier(i) for i in identity or []
    ]
    address = [street, postal_code, city]
    if any(address) and not all(address):
        raise fail("--street, --postal-code and --city go together")
    with unit_of_work(ctx) as session:
        data = CustomerCreate.model_validate(
            {
                "kind": "organisation" if organisation else "person",
                "name": name,
                "business_id": business_id,
                "language": language,
                "birthday": birthday,
                "emails": email or [],
                "phones": phone or [],
                "identities": [i.model_dump() for i in given],
                "addresses": [
                    AddressIn(
                        street=street, postal_code=postal_code, city=city, country=country
                    ).model_dump()
                ]
                if street and postal_code and city
                else [],
            }
        )
        customer = service.add_customer(session, data)
        audit(session, "customer.create", [customer.id])
        if as_json:
            print_json(CustomerOut.model_validate(customer).model_dump(mode="json"))
        else:
            console.print(f"Added customer {customer.id}.")
            console.print(_summary(customer))


@app.command()
def update(
    ctx: typer.Context,
    customer_id: int,
    name: Annotated[str | None, typer.Option(help="A corrected name.")] = None,
    birthday: Annotated[str | None, typer.Option(help="YYYY-MM-DD.")] = None,
    language: Annotated[str | None, typer.Option(help="fi, sv or en.")] = None,
    business_id: Annotated[str | None, typer.Option(help="Business id (Y-tunnus).")] = None,
    add_email: Annotated[list[str] | None, typer.Option(help="Another email (repeatable).")] = None,
    add_phone: Annotated[list[str] | None, typer.Option(help="Another phone (repeatable).")] = None,
    add_card: Annotated[list[str] | None, typer.Option(help="Another card (repeatable).")] = None,
    add_identity: Annotated[
        list[str] | None, typer.Option(help="Another identity as KIND:VALUE (repeatable).")
    ] = None,
    remove_identity: Annotated[
        list[int] | None, typer.Option(help="Identity id to remove, from `show --json`.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Rectify a customer: correct fields, add or remove identities; all or nothing."""
    fields = {"name": name, "birthday": birthday, "language": language, "business_id": business_id}
    given = (
        [("--add-email", IdentifierIn(kind="email", value=v)) for v in add_email or []]
        + [("--add-phone", IdentifierIn(kind="phone", value=v)) for v in add_phone or []]
        + [("--add-card", IdentifierIn(kind="card", value=v)) for v in add_card or []]
        + [("--add-identity", _identifier(i)) for i in add_identity or []]
    )
    with unit_of_work(ctx) as session:
        changes = CustomerUpdate.model_validate({k: v for k, v in fields.items() if v is not None})
        customer = service.update_customer(session, customer_id, changes)
        audit(session, "customer.update", [customer_id], fields=sorted(changes.model_fields_set))
        for identity_id in remove_identity or []:
            service.remove_identity(session, customer_id, identity_id)
        for option, identifier in given:
            try:
                service.add_identity(session, customer_id, identifier)
            except InvalidInput as exc:
                raise InvalidInput(option, exc.reason) from None
        session.refresh(customer)
        if as_json:
            print_json(CustomerOut.model_validate(customer).model_dump(mode="json"))
        else:
            console.print(f"Updated customer {customer.id}.")
            console.print(_summary(customer))


@app.command()
def contacts(
    ctx: typer.Context,
    organisation_id: int,
    add: Annotated[int | None, typer.Option(help="A person's customer id to add.")] = None,
    role: Annotated[str | None, typer.Option(help="The person's role (with --add).")] = None,
) -> None:
    """An organisation's contact persons; `--add PERSON --role ROLE` names one more."""
    if (add is None) != (role is None):
        raise fail("--add and --role go together")
    with unit_of_work(ctx) as session:
        if add is not None and role is not None:
            service.add_contact_person(session, organisation_id, add, role)
            audit(session, "contacts.add", [organisation_id, add])
        audit(session, "contacts.read", [organisation_id])
        table = Table("person", "name", "role", "since")
        for link in service.contact_persons(session, organisation_id):
            person = service.get_customer(session, link.person_id)
            since = link.since.isoformat() if link.since else ""
            table.add_row(str(person.id), person.name or "", link.role, since)
        console.print(table)


@app.command()
def show(ctx: typer.Context, customer_id: int, as_json: JsonFlag = False) -> None:
    """Show a customer's card."""
    with unit_of_work(ctx) as session:
        customer = service.get_customer(session, customer_id)
        audit(session, "customer.read", [customer.id])
        if as_json:
            print_json(CustomerOut.model_validate(customer).model_dump(mode="json"))
        else:
            console.print(_summary(customer))


@app.command()
def find(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help="Email, phone, card number, id or part of a name.")],
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    as_json: JsonFlag = False,
) -> None:
    """Find customers by any identity or by name."""
    with unit_of_work(ctx) as session:
        found = service.find_customers(session, query, limit=limit)
        audit(session, "customer.search", [c.id for c in found])
        if as_json:
            print_json([CustomerOut.model_validate(c).model_dump(mode="json") for c in found])
            return
        if not found:
            console.print(f"No customer matches {query!r}.")
            return
        table = Table("id", "name", "kind", "identities")
        for c in found:
            table.add_row(
                str(c.id), c.name or "", c.kind, ", ".join(i.display for i in c.identities)
            )
        console.print(table)


@app.command()
def merge(
    ctx: typer.Context,
    survivor_id: Annotated[int, typer.Argument(help="The record that stays.")],
    absorbed_id: Annotated[int, typer.Argument(help="The record folded into it.")],
    reason: Annotated[str, typer.Option(help="Why the two records are one customer.")],
) -> None:
    """Merge two records of one customer; everything moves to the survivor."""
    with unit_of_work(ctx) as session:
        record = service.merge_customers(
            session, survivor_id, absorbed_id, reason=reason, actor=actor()
        )
        audit(session, "customer.merge", [survivor_id, absorbed_id], merge=record.id)
        console.print(f"Merged customer {absorbed_id} into {survivor_id} (merge {record.id}).")


@app.command()
def unmerge(
    ctx: typer.Context,
    customer_id: Annotated[int, typer.Argument(help="The record that was absorbed.")],
    reason: Annotated[str, typer.Option(help="Why they are two customers after all.")],
) -> None:
    """Undo a merge: both records are exactly as they were before it."""
    with unit_of_work(ctx) as session:
        record = service.unmerge_customer(session, customer_id, reason=reason, actor=actor())
        audit(session, "customer.unmerge", [record.survivor_id, customer_id], merge=record.id)
        console.print(f"Customer {customer_id} is separate from {record.survivor_id} again.")


@app.command()
def merges(ctx: typer.Context, customer_id: int) -> None:
    """The merges a customer took part in."""
    with unit_of_work(ctx) as session:
        service.get_customer(session, customer_id)
        audit(session, "merges.read", [customer_id])
        print_json(
            [
                MergeOut.model_validate(m).model_dump(mode="json")
                for m in service.merges_of(session, customer_id)
            ]
        )


@app.command()
def timeline(
    ctx: typer.Context,
    customer_id: int,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    as_json: JsonFlag = False,
) -> None:
    """Every contact with the customer, newest first."""
    with unit_of_work(ctx) as session:
        entries = service.timeline(session, customer_id, limit=limit)
        audit(session, "timeline.read", [customer_id])
        if as_json:
            print_json([InteractionOut.model_validate(e).model_dump(mode="json") for e in entries])
            return
        table = Table("when", "channel", "dir", "staff", "summary")
        for e in entries:
            table.add_row(
                e.occurred_at.strftime("%Y-%m-%d %H:%M"),
                e.channel,
                e.direction,
                e.staff or "",
                e.summary or "",
            )
        console.print(table)


@app.command()
def record(
    ctx: typer.Context,
    customer_id: int,
    channel: Annotated[
        str, typer.Option(help="store, web, app, email, sms, phone, post, event, meeting.")
    ],
    summary: Annotated[str, typer.Option(help="What was said or done.")],
    direction: Annotated[str, typer.Option(help="inbound or outbound.")] = "inbound",
    staff: Annotated[str | None, typer.Option(help="Who served the customer.")] = None,
) -> None:
    """Put a contact on the customer's timeline."""
    with unit_of_work(ctx) as session:
        entry = service.record_interaction(
            session,
            customer_id,
            InteractionIn.model_validate(
                {
                    "channel": channel,
                    "direction": direction,
                    "summary": summary,
                    "staff": staff or actor(),
                }
            ),
        )
        audit(session, "timeline.add", [customer_id], recorded=entry is not None)
        if entry is None:
            console.print("Not recorded: the customer asked not to be remembered.")
        else:
            console.print(f"Recorded contact {entry.id}.")


@app.command()
def export(
    ctx: typer.Context,
    customer_id: int,
    out: Annotated[Path | None, typer.Option(help="Write to this file instead of stdout.")] = None,
) -> None:
    """Everything stored about the person, as JSON (subject access)."""
    from oppiva.privacy.service import export_person

    with unit_of_work(ctx) as session:
        data = export_person(session, customer_id)
        audit(session, "privacy.export", [r["customer_id"] for r in data["records"]])
    if out is None:
        print_json(data)
    else:
        import json

        out.write_text(json.dumps(data, ensure_ascii=False, indent=2))
        console.print(f"Wrote the export of customer {customer_id} to {out}.")


@app.command()
def erase(
    ctx: typer.Context,
    customer_id: int,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Erase a person: every personal datum goes, in every domain."""
    from oppiva.privacy.service import erase_person

    if not yes:
        typer.confirm(
            f"Erase customer {customer_id} and all their personal data for good?", abort=True
        )
    with unit_of_work(ctx, scrub=True) as session:
        erased = erase_person(session, customer_id)
        audit(session, "privacy.erase", erased)
    console.print(f"Erased customer record(s) {', '.join(map(str, erased))}.")
