"""`oppiva analyze` and `oppiva quiet-hours`: the analysis from the command line."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from oppiva.analytics import EngineKind, service
from oppiva.cli.common import (
    audit,
    console,
    day_option,
    fail,
    open_store,
    print_json,
    unit_of_work,
)
from oppiva.errors import OppivaError

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def analyze_command(
    ctx: typer.Context,
    engine: Annotated[
        EngineKind, typer.Option(help="duckdb (in-process) or spark (local[*] or --master).")
    ] = EngineKind.DUCKDB,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="The date analysed, YYYY-MM-DD (default today).")
    ] = None,
    master: Annotated[
        str | None, typer.Option(help="Spark master URL, e.g. spark://host:7077.")
    ] = None,
    json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Compute features, RFM, classes, stages, segments, clusters and quiet hours."""
    from oppiva.analytics.analysis import STAGES, analyze  # the engines: slow to import

    day = day_option(as_of, "--as-of")
    store = open_store(ctx)
    url = store.engine.url.render_as_string(hide_password=False)
    store.dispose()
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=json,
    ) as bar:
        task = bar.add_task("analyze", total=len(STAGES))

        def step(stage: str) -> None:
            bar.update(task, description=stage, completed=STAGES.index(stage))

        try:
            report = analyze(url, as_of=day, engine=engine, master=master, progress=step)
        except OppivaError as exc:
            raise fail(str(exc)) from None
        bar.update(task, description="done", completed=len(STAGES))
    with unit_of_work(ctx) as session:
        audit(session, "analyze", as_of=report.as_of.isoformat(), engine=report.engine)
    if json:
        print_json(
            {
                "as_of": report.as_of,
                "engine": report.engine,
                "customers": report.customers,
                **report.detail(),
            }
        )
        return
    console.print(
        f"Analysed {report.customers:,} customers as of {report.as_of} on {report.engine} "
        f"in {report.seconds:.1f} s; {report.changes:,} changes recorded.",
        markup=False,
    )
    table = Table("what", "counts")
    table.add_row("classes", ", ".join(f"{k} {v:,}" for k, v in report.classes.items()))
    table.add_row("stages", ", ".join(f"{k} {v:,}" for k, v in report.stages.items()))
    table.add_row("segments", ", ".join(f"{k} {v:,}" for k, v in report.segments.items()) or "-")
    table.add_row("quiet hours", f"{report.quiet_slots:,} quiet store-hours")
    value = report.value
    if "skipped" in value:
        table.add_row("customer value", f"not fitted: {value['skipped']}")
    elif value:
        table.add_row(
            "customer value",
            f"{value.get('repeat_customers', 0):,} repeat customers; 12-month CLV in all "
            f"{value.get('clv_total', 0):,.0f}; a new customer is worth "
            f"{value.get('new_customer_value', 0):,.2f}",
        )
    for cluster in report.clusters:
        table.add_row(f"lifestyle {cluster['id']}", f"{cluster['name']} ({cluster['size']:,})")
    console.print(table)


def quiet_hours_command(
    ctx: typer.Context,
    store: Annotated[str, typer.Argument(help="The store's code.")],
    audience: Annotated[int, typer.Option(min=0, max=500, help="Customers to list.")] = 0,
    json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """A store's weekday x hour traffic (visits a week), its quiet hours (*), and optionally
    the customers most likely to come in them."""
    with unit_of_work(ctx) as session:
        slots = service.quiet_slots(session, store)
        people = service.quiet_audience(session, store, audience) if audience else []
        if audience:
            audit(session, "quiet-hours audience", [p.customer_id for p in people], store=store)
    if json:
        print_json(
            {
                "store": store,
                "as_of": slots[0].as_of,
                "slots": [
                    {
                        "weekday": s.weekday,
                        "hour": s.hour,
                        "visits_per_week": round(s.visits_per_week, 2),
                        "sales_per_week": round(s.sales_per_week, 2),
                        "quiet": s.quiet,
                    }
                    for s in slots
                ],
                "audience": [
                    {"customer_id": p.customer_id, "rank": p.rank, "score": round(p.score, 4)}
                    for p in people
                ],
            }
        )
        return
    cells = {(s.weekday, s.hour): s for s in slots}
    hours = sorted({s.hour for s in slots})
    table = Table("hour", *DAYS, title=f"{store}: visits a week, * quiet (as of {slots[0].as_of})")
    for hour in hours:
        row = []
        for day in range(7):
            cell = cells.get((day, hour))
            row.append(
                "" if cell is None else f"{cell.visits_per_week:.1f}{' *' if cell.quiet else ''}"
            )
        table.add_row(f"{hour:02d}", *row)
    console.print(table)
    quiet = sum(s.quiet for s in slots)
    console.print(f"{quiet} of {len(slots)} open hours are quiet.", markup=False)
    for p in people:
        console.print(f"{p.rank:4d}. customer {p.customer_id} (score {p.score:.2f})", markup=False)
