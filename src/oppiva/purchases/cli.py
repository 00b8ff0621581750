"""`oppiva import ...`: bulk import of products, outlets and receipts from files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from oppiva.bulk.batches import ImportSummary
from oppiva.bulk.files import Mapping
from oppiva.cli.common import audit, console, fail, open_store
from oppiva.customers.bulk import import_customers
from oppiva.errors import OppivaError
from oppiva.purchases import importer

app = typer.Typer(help="Bulk import from CSV, JSON lines or Parquet files.", no_args_is_help=True)

FileArg = Annotated[Path | None, typer.Argument(help="The file (.csv, .jsonl, .parquet).")]
FormatOpt = Annotated[
    str | None,
    typer.Option("--format", help="csv, jsonl or parquet (default: by the file's suffix)."),
]
MappingOpt = Annotated[
    Path | None, typer.Option(help="A YAML file mapping our column names to the file's.")
]
RejectsOpt = Annotated[
    Path | None, typer.Option(help="Where bad rows go (default FILE.rejects.csv).")
]
EncodingOpt = Annotated[
    str | None, typer.Option(help="The file's text encoding (default: UTF-8, else Windows-1252).")
]


class RowsPerSecond(ProgressColumn):
    """Rows per second so far."""

    def render(self, task: Task) -> Text:
        speed = task.completed / task.elapsed if task.elapsed else 0.0
        return Text(f"{speed:,.0f} rows/s")


def run_import(ctx: typer.Context, kind: str, path: Path, **options: object) -> None:
    """Import one file with a progress bar and print what it did."""
    store = open_store(ctx)
    with Progress(
        TextColumn(f"[bold]importing {kind}"),
        BarColumn(),
        TaskProgressColumn(),
        RowsPerSecond(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task(kind, total=None)
        try:
            run: Callable[..., ImportSummary] = {
                "customers": import_customers,
                "receipts": importer.import_receipts,
                "products": importer.import_products,
                "outlets": importer.import_outlets,
            }[kind]
            summary = run(store, path, progress=lambda n: bar.advance(task, n), **options)
        except OppivaError as exc:
            raise fail(str(exc)) from None
        finally:
            store.dispose()
    parts = [f"{summary.rows:,} rows read", f"{summary.new:,} new {kind}"]
    if kind == "receipts":
        parts.append(f"{summary.lines:,} lines")
        parts.append(f"{summary.profiles:,} recognised-but-anonymous profiles")
    if summary.updated:
        parts.append(f"{summary.updated:,} updated")
    if summary.already:
        parts.append(f"{summary.already:,} already stored")
    parts.append(f"{summary.rejected_rows:,} rejected")
    console.print(
        ", ".join(parts) + f" in {summary.seconds:.1f} s ({summary.rows_per_s:,.0f} rows/s).",
        markup=False,
    )
    if summary.new == 0 and summary.updated == 0 and summary.rows:
        console.print("Nothing new: this file was imported before.", markup=False)
    if summary.rejects_path is not None:
        console.print(
            f"Bad rows, with line, column and reason: {summary.rejects_path}", markup=False
        )
    with open_store(ctx).transaction() as session:
        audit(
            session,
            f"import.{kind}",
            file=str(path),
            new=summary.new,
            rejected=summary.rejected_rows,
        )


@app.command()
def receipts(
    ctx: typer.Context,
    file: FileArg = None,
    dataset: Annotated[
        str | None, typer.Option(help="A dataset shipped with oppiva instead of a file: cdnow.")
    ] = None,
    fmt: FormatOpt = None,
    mapping: MappingOpt = None,
    rejects: RejectsOpt = None,
    encoding: EncodingOpt = None,
    source: Annotated[
        str, typer.Option(help="The source system of rows without a `source` column.")
    ] = "import",
    batch_rows: Annotated[
        int,
        typer.Option(min=100, max=5_000_000, help="Rows per transaction (memory grows with it)."),
    ] = 100_000,
) -> None:
    """Import receipts (one row per line); re-importing a file adds nothing."""
    if (file is None) == (dataset is None):
        raise fail("give a FILE or --dataset, not both")
    if dataset is not None:
        from oppiva.demo.datasets import dataset_files

        try:
            data = dataset_files(dataset)
        except OppivaError as exc:
            raise fail(str(exc)) from None
        run_import(ctx, "products", data.products)
        run_import(ctx, "outlets", data.outlets)
        run_import(
            ctx,
            "receipts",
            data.receipts,
            mapping=data.mapping,
            default_source=dataset,
            rejects_path=rejects,
        )
        return
    assert file is not None
    run_import(
        ctx,
        "receipts",
        file,
        fmt=fmt,
        mapping=Mapping.load(mapping),
        rejects_path=rejects,
        encoding=encoding,
        default_source=source,
        batch_rows=batch_rows,
    )


@app.command()
def products(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument()],
    fmt: FormatOpt = None,
    mapping: MappingOpt = None,
    rejects: RejectsOpt = None,
    encoding: EncodingOpt = None,
) -> None:
    """Create or update products by sku."""
    run_import(
        ctx,
        "products",
        file,
        fmt=fmt,
        mapping=Mapping.load(mapping),
        rejects_path=rejects,
        encoding=encoding,
    )


@app.command()
def outlets(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument()],
    fmt: FormatOpt = None,
    mapping: MappingOpt = None,
    rejects: RejectsOpt = None,
    encoding: EncodingOpt = None,
) -> None:
    """Create or update outlets (stores, the web shop, the app...) by code."""
    run_import(
        ctx,
        "outlets",
        file,
        fmt=fmt,
        mapping=Mapping.load(mapping),
        rejects_path=rejects,
        encoding=encoding,
    )


app.command("stores", help="The same as `outlets`.")(outlets)


@app.command()
def customers(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument()],
    fmt: FormatOpt = None,
    mapping: MappingOpt = None,
    rejects: RejectsOpt = None,
    encoding: EncodingOpt = None,
    source: Annotated[
        str, typer.Option(help="The system whose `customer_ref` the file uses.")
    ] = "import",
) -> None:
    """Import members (enrolled customers) with their identities; a re-import adds nothing."""
    run_import(
        ctx,
        "customers",
        file,
        fmt=fmt,
        mapping=Mapping.load(mapping),
        rejects_path=rejects,
        encoding=encoding,
        default_source=source,
    )
