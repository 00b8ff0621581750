"""`oppiva simulate`: a simulated chain's import files (stores, products, members, receipts)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from oppiva.cli.common import console
from oppiva.demo.simulator import FORMATS, simulate


class RowsPerSecond(ProgressColumn):
    """Members simulated per second so far."""

    def render(self, task: Task) -> Text:
        """The rate over the whole run so far (rich's own speed column counts bytes)."""
        speed = task.completed / task.elapsed if task.elapsed else 0.0
        return Text(f"{speed:,.0f} rows/s")


def simulate_command(
    ctx: typer.Context,
    customers: Annotated[
        int, typer.Option(help="How many members (registered customers) to simulate.")
    ] = 5000,
    stores: Annotated[
        int, typer.Option(help="How many physical stores, besides the web shop and the app.")
    ] = 5,
    weeks: Annotated[
        int, typer.Option(help="How many weeks of receipts, from Monday 2025-01-06.")
    ] = 52,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed, the same files.")] = 1,
    out: Annotated[
        Path, typer.Option(help="The directory for the files (created when missing).")
    ] = Path("simulated"),
    format: Annotated[str, typer.Option(help="csv, jsonl or parquet.")] = "csv",
) -> None:
    """Write simulated stores, products, members and receipts, and the truth behind them."""
    if customers < 1:
        raise typer.BadParameter("must be at least 1", param_hint="--customers")
    if stores < 1:
        raise typer.BadParameter("must be at least 1", param_hint="--stores")
    if weeks < 1:
        raise typer.BadParameter("must be at least 1", param_hint="--weeks")
    if format not in FORMATS:
        raise typer.BadParameter(
            f"{format!r} is not one of {', '.join(FORMATS)}", param_hint="--format"
        )
    with Progress(
        TextColumn("[bold]simulating members"),
        BarColumn(),
        MofNCompleteColumn(),
        RowsPerSecond(),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("simulate", total=customers)
        summary = simulate(
            customers,
            stores,
            weeks,
            seed,
            out,
            fmt=format,
            progress=lambda n: bar.advance(task, n),
        )
    console.print(
        f"Wrote {summary.stores} stores, {summary.products:,} products, "
        f"{summary.customers:,} members and {summary.receipts:,} receipts "
        f"({summary.lines:,} lines, {summary.returns:,} returned; "
        f"{summary.anonymous_receipts:,} anonymous receipts; "
        f"{summary.shoppers:,} non-members buying too) as {format} in {out}, "
        f"and the truth behind them in {out}/truth*.parquet.",
        markup=False,
    )
