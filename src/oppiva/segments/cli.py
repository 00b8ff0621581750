"""`oppiva segments ...`: saved segments, presets, members and the history of classes."""

from __future__ import annotations

from datetime import date
from typing import Annotated

import typer
from rich.table import Table

from oppiva.cli.common import (
    audit,
    console,
    day_option,
    fail,
    print_json,
    unit_of_work,
)
from oppiva.segments import service

app = typer.Typer(help="Saved segments, presets, members and history.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@app.command("list")
def list_command(ctx: typer.Context, json: JsonFlag = False) -> None:
    """Saved segments with their member counts at the latest analysis."""
    with unit_of_work(ctx) as session:
        rows = service.list_segments(session)
        latest = service.latest_analysis(session)
        data = [
            {"key": s.key, "name": s.name, "criteria": s.criteria, "members": n, "preset": s.preset}
            for s, n in rows
        ]
    if json:
        print_json({"as_of": latest, "segments": data})
        return
    table = Table(
        "key", "name", "members", "criteria", title=f"segments (analysis {latest or 'none yet'})"
    )
    for row in data:
        table.add_row(
            str(row["key"]), str(row["name"]), f"{row['members']:,}", str(row["criteria"])
        )
    console.print(table)


@app.command()
def show(ctx: typer.Context, key: str, json: JsonFlag = False) -> None:
    """A saved segment: its definition and member count."""
    with unit_of_work(ctx) as session:
        segment = service.get_segment(session, key)
        count = service.member_count(session, segment)
        data = {
            "key": segment.key,
            "name": segment.name,
            "description": segment.description,
            "criteria": segment.criteria,
            "preset": segment.preset,
            "members": count,
            "updated_at": segment.updated_at,
        }
    if json:
        print_json(data)
        return
    for name, value in data.items():
        console.print(f"{name}: {value if value is not None else ''}", markup=False)


@app.command()
def define(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(help="Lower-case key, e.g. key-customers.")],
    criteria: Annotated[str | None, typer.Argument(help="The criteria expression.")] = None,
    preset: Annotated[str | None, typer.Option(help="Start from a preset (see `presets`).")] = None,
    name: Annotated[str | None, typer.Option(help="A readable name.")] = None,
    description: Annotated[str | None, typer.Option(help="What the segment is for.")] = None,
) -> None:
    """Save a segment (replacing one of the same key); members come with the next analysis."""
    with unit_of_work(ctx) as session:
        segment = service.define_segment(
            session, key, criteria, name=name, description=description, preset=preset
        )
        audit(session, "segment defined", key=key, criteria=segment.criteria)
        text = segment.criteria
    console.print(f"Segment {key} saved: {text}", markup=False)


@app.command()
def delete(ctx: typer.Context, key: str) -> None:
    """Forget a saved segment and its members (its history stays)."""
    with unit_of_work(ctx) as session:
        service.delete_segment(session, key)
        audit(session, "segment deleted", key=key)
    console.print(f"Segment {key} deleted.", markup=False)


@app.command()
def presets(json: JsonFlag = False) -> None:
    """The ready-made definitions, with the example dataset of each."""
    data = [
        {
            "preset": p.key,
            "name": p.name,
            "criteria": p.criteria,
            "description": p.description,
            "dataset": p.dataset,
        }
        for p in service.PRESETS.values()
    ]
    if json:
        print_json(data)
        return
    table = Table("preset", "criteria", "description")
    for row in data:
        table.add_row(row["preset"], row["criteria"], row["description"])
    console.print(table)


@app.command()
def members(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(help="A segment key, or class/action/rfm/cluster/stage.")],
    value: Annotated[
        str | None, typer.Argument(help="For a dimension: the value, e.g. key or lapsed.")
    ] = None,
    on: Annotated[str | None, typer.Option(help="The date, YYYY-MM-DD (default: latest).")] = None,
    after: Annotated[int, typer.Option(help="Continue after this customer id.")] = 0,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 100,
    json: JsonFlag = False,
) -> None:
    """Customer ids in a segment, or with a class, stage, RFM segment or cluster, on a date."""
    day = day_option(on, "--on")
    with unit_of_work(ctx) as session:
        if key in service.DIMENSIONS:
            if value is None:
                raise fail(f"give the {key} to list, e.g. `oppiva segments members {key} VALUE`")
            dimension, wanted = key, value
        else:
            service.get_segment(session, key)
            dimension, wanted = f"segment:{key}", "member"
        ids = service.members(session, dimension, wanted, on=day, after=after, limit=limit)
        audit(session, "segment members", ids or [None], dimension=dimension, value=wanted)
    if json:
        print_json({"dimension": dimension, "value": wanted, "on": day, "customer_ids": ids})
        return
    for customer_id in ids:
        typer.echo(customer_id)


@app.command()
def migration(
    ctx: typer.Context,
    dimension: Annotated[str, typer.Argument(help="class, action, rfm, cluster or stage.")],
    start: Annotated[str, typer.Argument(help="From date, YYYY-MM-DD.")],
    end: Annotated[str, typer.Argument(help="To date, YYYY-MM-DD.")],
    json: JsonFlag = False,
) -> None:
    """How many customers moved from each value to each other between two dates."""
    first, last = day_option(start, "START"), day_option(end, "END")
    with unit_of_work(ctx) as session:
        result = service.migration(session, dimension, first or date.min, last or date.min)
    if json:
        print_json(result)
        return
    matrix = result["matrix"]
    columns = sorted({b for row in matrix.values() for b in row})
    table = Table(f"{start} \\ {end}", *columns, title=f"{dimension} migration")
    for a in sorted(matrix):
        table.add_row(a, *(f"{matrix[a].get(b, 0):,}" for b in columns))
    console.print(table)
