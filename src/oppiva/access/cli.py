"""`oppiva users`, `oppiva keys` and `oppiva audit`: access control from the command line.

The local command line works on the database directly; what it does is audited under the
operating-system user.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Annotated

import typer
from rich.table import Table

from oppiva.access import service
from oppiva.access.schemas import AuditOut, KeyOut, UserOut
from oppiva.cli.common import actor, audit, console, fail, print_json, unit_of_work
from oppiva.db import utcnow

users_app = typer.Typer(help="Staff accounts and their roles.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys for tills and integrations.", no_args_is_help=True)


def _when(value: object) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else "-"  # type: ignore[attr-defined]


@users_app.command("add")
def add_user(
    ctx: typer.Context,
    email: str,
    name: Annotated[str, typer.Option(help="Display name.")],
    role: Annotated[
        list[str],
        typer.Option(
            help="A role (repeatable): admin, service, marketing, analyst, privacy, store."
        ),
    ],
    password: Annotated[
        str | None,
        typer.Option(help="The password; asked for when not given (or OPPIVA_NEW_PASSWORD)."),
    ] = None,
) -> None:
    """Add a member of staff."""
    secret = password or os.environ.get("OPPIVA_NEW_PASSWORD")
    if secret is None:
        secret = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    with unit_of_work(ctx) as session:
        user = service.create_user(session, email, name, secret, role)
        audit(session, "user.create", user=user.id)
        console.print(f"Added user {user.id} ({user.email}) with roles {', '.join(role)}.")


@users_app.command("list")
def list_users(
    ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False
) -> None:
    """Every member of staff with their roles and last login."""
    with unit_of_work(ctx) as session:
        users = [UserOut.model_validate(u) for u in service.list_users(session)]
    if as_json:
        print_json([u.model_dump(mode="json") for u in users])
        return
    table = Table("id", "email", "name", "roles", "active", "last login")
    for u in users:
        table.add_row(
            str(u.id),
            u.email,
            u.display_name,
            ", ".join(u.roles),
            "yes" if u.is_active else "no",
            _when(u.last_login_at),
        )
    console.print(table)


@users_app.command("disable")
def disable_user(
    ctx: typer.Context, user: Annotated[str, typer.Argument(help="Id or email.")]
) -> None:
    """Disable an account; its login tokens stop working at once."""
    with unit_of_work(ctx) as session:
        row = service.disable_user(session, user)
        audit(session, "user.disable", user=row.id)
        console.print(f"Disabled user {row.id} ({row.email}).")


@users_app.command("roles")
def roles(
    ctx: typer.Context,
    user: Annotated[
        str | None, typer.Argument(help="Id or email; without it, list the roles.")
    ] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Give the user these roles (repeatable).")
    ] = None,
) -> None:
    """The roles and their permissions, or one user's roles (`--set` changes them)."""
    with unit_of_work(ctx) as session:
        if user is None:
            table = Table("role", "permissions", "description")
            for r in service.list_roles(session):
                table.add_row(r.name, ", ".join(r.permissions), r.description)
            console.print(table)
            return
        row = service.set_roles(session, user, set_) if set_ else service.get_user(session, user)
        if set_:
            audit(session, "user.roles", user=row.id, roles=list(set_))
        console.print(f"{row.email}: {', '.join(r.name for r in row.roles)}")


@keys_app.command("create")
def create_key(
    ctx: typer.Context,
    name: str,
    scope: Annotated[
        list[str], typer.Option(help="A permission the key carries (repeatable), e.g. identify.")
    ],
    store: Annotated[str | None, typer.Option(help="Bind the key to one store.")] = None,
    expires_days: Annotated[
        int | None, typer.Option(min=1, max=3650, help="Expire after this many days.")
    ] = None,
) -> None:
    """Create an API key; it is printed once and never shown again."""
    expires_at = utcnow() + timedelta(days=expires_days) if expires_days else None
    with unit_of_work(ctx) as session:
        key, row = service.create_key(
            session, name, scope, created_by=actor(), store=store, expires_at=expires_at
        )
        audit(session, "key.create", key=row.id)
    console.print(f"API key {row.id} ({row.name}), scopes {', '.join(row.scopes)}:")
    typer.echo(key)
    console.print("Keep it now: it is stored only as a hash and cannot be shown again.")


@keys_app.command("list")
def list_keys(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every key with its scopes, store, expiry and last use (never the key itself)."""
    with unit_of_work(ctx) as session:
        keys = [KeyOut.model_validate(k) for k in service.list_keys(session)]
    if as_json:
        print_json([k.model_dump(mode="json") for k in keys])
        return
    table = Table("id", "name", "prefix", "scopes", "store", "expires", "last used", "revoked")
    for k in keys:
        table.add_row(
            str(k.id),
            k.name,
            k.prefix,
            ", ".join(k.scopes),
            k.store or "-",
            _when(k.expires_at),
            _when(k.last_used_at),
            _when(k.revoked_at),
        )
    console.print(table)


@keys_app.command("revoke")
def revoke_key(ctx: typer.Context, key_id: int) -> None:
    """Revoke a key: it stops working at once."""
    with unit_of_work(ctx) as session:
        row = service.revoke_key(session, key_id)
        audit(session, "key.revoke", key=row.id)
    console.print(f"Revoked API key {row.id} ({row.name}).")


def audit_command(
    ctx: typer.Context,
    customer: Annotated[int | None, typer.Option(help="Only entries about this customer.")] = None,
    actor_: Annotated[
        str | None, typer.Option("--actor", help="Only this actor (e.g. user:3 or cli:root).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The audit log, newest first: who looked at or changed whose data."""
    if customer is not None and customer < 1:
        raise fail("--customer: must be a customer id")
    with unit_of_work(ctx) as session:
        entries = [
            AuditOut.model_validate(e)
            for e in service.audit_log(session, customer_id=customer, actor=actor_, limit=limit)
        ]
    if as_json:
        print_json([e.model_dump(mode="json") for e in entries])
        return
    table = Table("when", "actor", "action", "customer", "from", "purpose")
    for e in entries:
        table.add_row(
            e.at.strftime("%Y-%m-%d %H:%M:%S"),
            e.actor,
            e.action,
            str(e.customer_id or "-"),
            e.client_address or "-",
            e.purpose or "",
        )
    console.print(table)
