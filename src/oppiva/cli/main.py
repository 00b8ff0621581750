"""The `oppiva` command: store set-up, the domains' sub-commands, the demo and the server."""

from __future__ import annotations

import os
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from oppiva.access.cli import audit_command, keys_app, users_app
from oppiva.analytics.cli import analyze_command, quiet_hours_command
from oppiva.cli.common import actor, console, err_console, fail, open_store, unit_of_work
from oppiva.config import get_settings
from oppiva.customers.cli import app as customers_app
from oppiva.demo.cli import simulate_command
from oppiva.loyalty.cli import app as loyalty_app
from oppiva.migrations import current, downgrade, head
from oppiva.offers.cli import app as offers_app
from oppiva.privacy.cli import app as consent_app
from oppiva.purchases.cli import app as import_app
from oppiva.segments.cli import app as segments_app
from oppiva.value.cli import app as value_app

app = typer.Typer(
    help="oppiva: one-to-one marketing, the learning customer relationship.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(
    help="The store's schema: upgrade, downgrade, current revision.", no_args_is_help=True
)
app.add_typer(customers_app, name="customers")
app.add_typer(consent_app, name="consent")
app.add_typer(db_app, name="db")
app.add_typer(import_app, name="import")
app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="keys")
app.add_typer(segments_app, name="segments")
app.add_typer(value_app, name="value")
app.add_typer(loyalty_app, name="loyalty")
app.add_typer(offers_app, name="offers")
app.command("audit")(audit_command)
app.command("analyze")(analyze_command)
app.command("quiet-hours")(quiet_hours_command)
app.command("simulate")(simulate_command)


@app.callback()
def root(
    ctx: typer.Context,
    database: Annotated[
        str | None,
        typer.Option(
            "--database",
            "-d",
            envvar="OPPIVA_DATABASE_URL",
            help="SQLAlchemy URL of the store (default sqlite:///./oppiva.db).",
        ),
    ] = None,
) -> None:
    """Every command works on the store named by --database or OPPIVA_DATABASE_URL."""
    ctx.obj = {"database": database or get_settings().database_url}


def _upgrade(ctx: typer.Context, revision: str = "head") -> str:
    store = open_store(ctx, require_schema=False)
    try:
        store.upgrade(revision)
        return current(store.engine) or "base"
    except Exception as exc:
        raise fail(f"cannot upgrade {store.engine.url!r}: {exc}") from None
    finally:
        store.dispose()


@app.command()
def init(ctx: typer.Context) -> None:
    """Create or upgrade the store and the identity-hashing key."""
    get_settings().hashing_key()
    revision = _upgrade(ctx)
    console.print(f"Store ready at {ctx.obj['database']} (schema {revision}).", markup=False)


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context, revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    console.print(f"Schema at {_upgrade(ctx, revision)}.")


@db_app.command("downgrade")
def db_downgrade(ctx: typer.Context, revision: str) -> None:
    """Revert migrations down to REVISION (`base` empties the store)."""
    store = open_store(ctx, require_schema=False)
    try:
        downgrade(store.engine, revision)
        console.print(f"Schema at {current(store.engine) or 'base'}.")
    finally:
        store.dispose()


@db_app.command("current")
def db_current(ctx: typer.Context) -> None:
    """Print the schema revision of the store and the newest one shipped."""
    store = open_store(ctx, require_schema=False)
    try:
        console.print(f"store: {current(store.engine) or 'none'}, newest: {head()}")
    finally:
        store.dispose()


@app.command()
def demo(
    ctx: typer.Context,
    people: Annotated[int, typer.Option(min=1, max=1_000_000, help="How many people.")] = 300,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed, the same register.")] = 1,
    fresh: Annotated[bool, typer.Option(help="Start from an empty SQLite file.")] = True,
    customers: Annotated[
        int, typer.Option(min=0, max=1_000_000, help="Members of a simulated chain (0: none).")
    ] = 5000,
    weeks: Annotated[int, typer.Option(min=1, max=520, help="Weeks of simulated receipts.")] = 52,
) -> None:
    """Load sample customers (consents, timeline) and a simulated year of a chain's receipts."""
    from oppiva.customers.service import count_customers
    from oppiva.demo.cli import simulate_command
    from oppiva.demo.sample import COMPANIES, demo_credentials, load_sample
    from oppiva.purchases.cli import run_import

    url: str = ctx.obj["database"]
    if fresh and url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        for suffix in ("", "-wal", "-shm"):
            Path(url.removeprefix("sqlite:///") + suffix).unlink(missing_ok=True)
    _upgrade(ctx)
    with Progress(
        TextColumn("[bold]loading sample customers"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("load", total=people + len(COMPANIES))
        with unit_of_work(ctx) as session:
            summary = load_sample(
                session, people=people, seed=seed, progress=lambda n: bar.advance(task, n)
            )
            credentials = demo_credentials(session, actor())
    if customers:
        folder = _demo_folder(url) / "simulated"
        simulate_command(ctx, customers=customers, stores=5, weeks=weeks, seed=seed, out=folder)
        run_import(ctx, "outlets", folder / "stores.csv")
        run_import(ctx, "products", folder / "products.csv")
        run_import(ctx, "customers", folder / "customers.csv", default_source="crm")
        run_import(ctx, "receipts", folder / "receipts.csv")
        _demo_analysis(ctx, date(2025, 1, 6) + timedelta(weeks=weeks, days=-1))
    with unit_of_work(ctx) as session:
        total = count_customers(session)
    settings = get_settings()
    base = f"http://{settings.host}:{settings.port}"
    console.print(
        f"Loaded {summary.people} people and {summary.organisations} organisations "
        f"({summary.identities} identities, {summary.consents} consent decisions, "
        f"{summary.interactions} timeline entries); {total} active customers in {url}.",
        markup=False,
    )
    console.print(
        f"Demo admin: {credentials.admin_email}  password: {credentials.admin_password}\n"
        f"Till key (receipts:write, identify, consent:check; store {credentials.store}): "
        f"{credentials.till_key}\n"
        f"These are shown once. The API will be at {base}/v1 (docs: {base}/docs); log in with\n"
        f"  curl -d 'username={credentials.admin_email}&password=...' {base}/v1/auth/token",
        markup=False,
    )


DEMO_SEGMENTS = {
    "families": 'share("baby & kids") >= 0.15 and visits_365d >= 6',
    "web-regulars": 'preferred_channel in ("web", "app") and visits_365d >= 12',
    "slipping-regulars": "visits_365d >= 12 and recency_days > 2 * mean_interpurchase_days",
}


def _demo_analysis(ctx: typer.Context, as_of: date) -> None:
    """A few saved segments and a preset, then the analysis as of the simulation's last day."""
    from oppiva.analytics.cli import analyze_command
    from oppiva.segments.service import define_segment

    with unit_of_work(ctx) as session:
        define_segment(session, "department-store-key", preset="department-store-key")
        for key, criteria in DEMO_SEGMENTS.items():
            define_segment(session, key, criteria)
    analyze_command(ctx, as_of=as_of.isoformat())


def _demo_folder(url: str) -> Path:
    """Beside the SQLite file, or a temporary folder for a server database."""
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        return Path(url.removeprefix("sqlite:///")).parent
    import tempfile

    return Path(tempfile.mkdtemp(prefix="oppiva-demo-"))


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Address to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000).")] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1, max=64, help="Server processes; more than one uses more cores (default 1)."
        ),
    ] = 1,
    access_log: Annotated[
        bool,
        typer.Option(
            "--access-log/--no-access-log",
            help="Log a line per request (off by default: the audit log records who did what).",
        ),
    ] = False,
) -> None:
    """Upgrade the store and serve the HTTP API (OpenAPI at /docs)."""
    import uvicorn

    from oppiva.api.app import create_app
    from oppiva.db import Store

    settings = get_settings()
    host = host or settings.host
    port = port or settings.port
    _upgrade(ctx)
    if host not in ("127.0.0.1", "localhost", "::1") and not settings.behind_tls_proxy:
        err_console.print(
            f"warning: serving on {host} without TLS: put a TLS-terminating proxy in front and "
            "set OPPIVA_BEHIND_TLS_PROXY=true",
            markup=False,
        )
    console.print(
        f"oppiva API on http://{host}:{port}/v1  (docs: http://{host}:{port}/docs)", markup=False
    )
    # uvloop and httptools serve when installed (`pip install uvicorn[standard]`).
    if workers == 1:
        api = create_app(Store(ctx.obj["database"]))
        uvicorn.run(api, host=host, port=port, log_level="info", access_log=access_log)
        return
    # Each worker process builds its own app (and pool) from the environment. uvicorn's own
    # command supervises them: its workers cannot re-import a console script as their main.
    os.environ["OPPIVA_DATABASE_URL"] = ctx.obj["database"]
    command = [sys.executable, "-m", "uvicorn", "oppiva.api.app:create_app", "--factory"]
    command += ["--workers", str(workers), "--host", host, "--port", str(port)]
    command += ["--log-level", "info", "--access-log" if access_log else "--no-access-log"]
    os.execv(sys.executable, command)  # noqa: S606 (our own interpreter, no shell)


def main() -> None:
    app()
