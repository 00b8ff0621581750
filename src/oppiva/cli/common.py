"""What every CLI command shares: the store it works on, one transaction, plain-line errors."""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any, overload

import typer
from pydantic import ValidationError
from rich.console import Console
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from oppiva.access.permissions import Permission
from oppiva.access.service import AuditContext, Principal, record_audit
from oppiva.db import Store
from oppiva.errors import OppivaError

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print one plain line to stderr and return the exit to raise."""
    err_console.print(f"error: {message}", markup=False, highlight=False)
    return typer.Exit(code)


def day_option(text: str | None, option: str) -> date | None:
    """A YYYY-MM-DD option's date (None when not given), or exit naming the option."""
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        raise fail(f"{option} {text!r}: write the date as YYYY-MM-DD") from None


@overload
def moment_option(text: str, option: str) -> datetime: ...
@overload
def moment_option(text: None, option: str) -> None: ...
@overload
def moment_option(text: str | None, option: str) -> datetime | None: ...
def moment_option(text: str | None, option: str) -> datetime | None:
    """An ISO date-and-time option with its time zone (None when not given), or exit."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise fail(f"{option}: {text!r} is no date and time, e.g. 2026-05-04T10:00+03:00") from None
    if moment.tzinfo is None:
        raise fail(f"{option}: needs a time zone, e.g. 2026-05-04T10:00+03:00")
    return moment


def principal() -> Principal:
    """Who runs the command: the operating-system user, with every permission (local access
    to the database is the credential)."""
    try:
        name = getpass.getuser()
    except Exception:  # pragma: no cover - no user database in some containers
        name = "unknown"
    return Principal("cli", None, name, frozenset(Permission))


def actor() -> str:
    """How the merge records and the audit log name the command's user."""
    return principal().actor


def audit(
    session: Session, action: str, customer_ids: Iterable[int | None] = (None,), **detail: Any
) -> None:
    """Write the audit log for a command, under the operating-system user."""
    record_audit(
        session, AuditContext(principal(), client_address="local"), action, customer_ids, detail
    )


def open_store(ctx: typer.Context, *, require_schema: bool = True) -> Store:
    """The store named by `--database` (or `OPPIVA_DATABASE_URL`), checked to be initialised."""
    from oppiva.migrations import current, head

    url: str = ctx.find_root().obj["database"]
    store = Store(url)
    if require_schema:
        try:
            revision = current(store.engine)
        except Exception as exc:
            raise fail(f"cannot open the database {store.engine.url!r}: {exc}") from None
        if revision != head():
            raise fail(
                f"the database {store.engine.url!r} is at revision {revision or 'none'}, "
                f"not {head()}: run `oppiva init` (or `oppiva db upgrade`)"
            )
    return store


@contextmanager
def unit_of_work(ctx: typer.Context, *, scrub: bool = False) -> Iterator[Session]:
    """One transaction for the command; an error is one line on stderr and exit code 2.

    `scrub` folds the log into the file after commit, for commands that erase personal data.
    """
    store = open_store(ctx)
    try:
        with store.transaction() as session:
            yield session
        if scrub:
            store.scrub()
    except OppivaError as exc:
        raise fail(str(exc)) from None
    except IntegrityError:
        # Another writer got there first (the service's own checks could not see it).
        raise fail("the change conflicts with data stored meanwhile; nothing was written") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        place = ".".join(str(p) for p in first["loc"])
        raise fail(f"{place}: {first['msg']}") from None
    finally:
        store.dispose()


def print_json(data: Any) -> None:
    """JSON on stdout, for scripts."""
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))
