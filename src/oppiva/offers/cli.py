"""`oppiva offers ...`: train the recommenders, evaluate them, run campaigns, read offers."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from oppiva.analytics.engine import EngineKind
from oppiva.cli.common import audit, console, fail, open_store, print_json, unit_of_work
from oppiva.config import get_settings
from oppiva.errors import OppivaError
from oppiva.offers import batch, evaluate

app = typer.Typer(
    help="Personal offers: recommenders, coupon campaigns, till offers and chosen offers.",
    no_args_is_help=True,
)


# --- candidates and evaluation ---


def _day(option: str, text: str | None) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        raise fail(f"{option} {text!r}: write the date as YYYY-MM-DD") from None


@app.command("train")
def train_command(
    ctx: typer.Context,
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="Score as of this date, YYYY-MM-DD (default today)."),
    ] = None,
    engine: Annotated[
        EngineKind, typer.Option(help="duckdb: ALS with implicit here; spark: ALS on Spark MLlib.")
    ] = EngineKind.DUCKDB,
    master: Annotated[
        str | None, typer.Option(help="Spark master URL (with --engine spark).")
    ] = None,
    known: Annotated[int, typer.Option(min=1, max=200, help="Known candidates per customer.")] = 20,
    new: Annotated[int, typer.Option(min=0, max=200, help="New candidates per customer.")] = 20,
    json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Fit the recommenders on the purchase history and replace the offer candidates."""
    day = _day("--as-of", as_of)
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
        task = bar.add_task("offers", total=len(batch.STAGES))

        def step(stage: str) -> None:
            bar.update(task, description=stage, completed=batch.STAGES.index(stage))

        try:
            report = batch.train(
                url, as_of=day, engine=engine, master=master, known=known, new=new, progress=step
            )
        except OppivaError as exc:
            raise fail(str(exc)) from None
        bar.update(task, description="done", completed=len(batch.STAGES))
    with unit_of_work(ctx) as session:
        audit(session, "offers.train", as_of=report.as_of.isoformat(), engine=report.engine)
    if json:
        print_json(asdict(report))
        return
    console.print(
        f"Scored {report.customers:,} customers and {report.products:,} products as of "
        f"{report.as_of} on {report.engine} in {report.seconds:.1f} s: {report.known:,} known "
        f"and {report.new:,} new candidates ("
        + ", ".join(f"{k} {v:,}" for k, v in sorted(report.recommenders.items()))
        + ").",
        markup=False,
    )


@app.command("evaluate")
def evaluate_command(
    ctx: typer.Context,
    train_until: Annotated[
        str, typer.Option("--train-until", help="Last day of the training history, YYYY-MM-DD.")
    ],
    test_weeks: Annotated[int, typer.Option(min=1, max=52, help="Weeks tested after it.")] = 4,
    engine: Annotated[
        EngineKind, typer.Option(help="duckdb or spark (for ALS).")
    ] = EngineKind.DUCKDB,
    write: Annotated[
        Path | None, typer.Option("--write", help="Also write the results as Markdown here.")
    ] = None,
    json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
) -> None:
    """Hit rate, precision and recall at 6 of oppiva's coupons against popularity and repeat."""
    day = _day("--train-until", train_until)
    assert day is not None
    store = open_store(ctx)
    url = store.engine.url.render_as_string(hide_password=False)
    store.dispose()
    try:
        result = evaluate.evaluate_store(url, day, test_weeks, str(engine), get_settings().timezone)
    except OppivaError as exc:
        raise fail(str(exc)) from None
    if write is not None:
        write.write_text(evaluate.markdown(result), encoding="utf-8")
    if json:
        print_json(
            {
                "train_until": day,
                "test_weeks": test_weeks,
                "customers": result.customers,
                "sets": [asdict(m) for m in result.sets],
                "new_hit_rate": result.new_hit_rate,
                "new_popular_hit_rate": result.new_popular_hit_rate,
            }
        )
        return
    table = Table("coupon set", "k", "hit rate@k", "precision@k", "recall@k")
    for m in result.sets:
        table.add_row(
            m.name, str(m.k), f"{m.hit_rate:.3f}", f"{m.precision:.3f}", f"{m.recall:.3f}"
        )
    table.add_row("new-product coupons", "2", f"{result.new_hit_rate:.3f}", "", "")
    table.add_row("popularity among new", "2", f"{result.new_popular_hit_rate:.3f}", "", "")
    console.print(
        f"Trained up to {day}, tested on {test_weeks} weeks: {result.customers:,} customers.",
        markup=False,
    )
    console.print(table)


@app.command("candidates")
def candidates_command(
    ctx: typer.Context,
    customer: Annotated[int, typer.Argument(help="The customer's id.")],
    kind: Annotated[str | None, typer.Option(help="known or new (default both).")] = None,
    language: Annotated[str, typer.Option(help="Explanations in en or fi.")] = "en",
    json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """A customer's offer candidates from the latest batch, with the explanation."""
    with unit_of_work(ctx) as session:
        rows = batch.customer_candidates(session, customer, kind, language)
        audit(session, "offers.candidates.read", [customer], kind=kind)
    if json:
        print_json([asdict(r) for r in rows])
        return
    table = Table("kind", "rank", "product", "recommender", "score", "due on", "why")
    for r in rows:
        table.add_row(
            r.kind,
            str(r.rank),
            f"{r.sku} {r.product_name}",
            r.recommender,
            f"{r.score:.3f}",
            str(r.due_on or ""),
            r.explanation,
        )
    console.print(table)


# --- campaigns, coupons and their lifecycle ---


# --- till offers and choose your offers ---
