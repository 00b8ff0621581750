"""`oppiva analyze`: store -> Parquet -> engine (features, segmentation) -> store.

Stages: read the store, compute the features, fit the value models, score RFM, classes and
life-cycle stages, evaluate the saved segments, fit the lifestyle clusters, find the quiet
hours, record what changed, write back. Everything is written in one transaction at the end,
stamped `as_of`; a second run for the same date replaces the first.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import duckdb
import ibis.expr.types as ir
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from oppiva.analytics.catalogue import FEATURES, Kind
from oppiva.analytics.engine import Engine, EngineKind, open_engine
from oppiva.analytics.features import (
    MAX_MONTHS_COVERED,
    Sources,
    customer_features,
    day_number,
    purchase_lines,
    share_column,
    visit_profile,
    visits,
)
from oppiva.analytics.quiet import quiet_audience, quiet_slots
from oppiva.analytics.scope import EngineScope
from oppiva.analytics.transfer import Query, Write, dump, load
from oppiva.config import Settings, get_settings
from oppiva.db import utcnow
from oppiva.errors import InvalidInput
from oppiva.segments import rules
from oppiva.segments.criteria import Criteria, to_ibis, validate
from oppiva.value import stage as value_stage

STAGES = (
    "reading the store",
    "customer features",
    "customer value",
    "RFM, classes, stages, segments",
    "lifestyle clusters",
    "quiet hours",
    "history",
    "writing the results",
)

Progress = Callable[[str], None]


def queries(timezone: str, as_of: date) -> list[Query]:
    """What the analysis reads from the store (merged and erased customers left out)."""
    i64, text, f64 = pa.int64(), pa.string(), pa.float64()
    return [
        Query(
            "receipts",
            "SELECT id, customer_id, outlet_id, purchased_at, total_cents FROM receipt",
            split=("receipt", "id"),
            timestamps=("purchased_at",),
            local="purchased_at",
            timezone=timezone,
            types={"id": i64, "customer_id": i64, "outlet_id": i64, "total_cents": i64},
        ),
        Query(
            "lines",
            "SELECT receipt_id, product_id, quantity, line_total_cents, cost_cents, "
            "returns_receipt_id FROM receipt_line",
            split=("receipt_line", "id"),
            types={
                "receipt_id": i64,
                "returns_receipt_id": i64,
                "product_id": i64,
                "quantity": f64,
                "line_total_cents": i64,
                "cost_cents": i64,
            },
        ),
        Query(
            "products",
            "SELECT id, sku, department, product_group, subgroup, "
            "CAST(attributes AS TEXT) AS attributes FROM product",
            types={
                "id": i64,
                "sku": text,
                "department": text,
                "product_group": text,
                "subgroup": text,
                "attributes": text,
            },
        ),
        Query(
            "outlets",
            "SELECT id, code, kind FROM outlet",
            types={"id": i64, "code": text, "kind": text},
        ),
        Query(
            "customers",
            "SELECT id FROM customer WHERE merged_into_id IS NULL AND erased_at IS NULL",
            types={"id": i64},
        ),
        Query(
            "open_history",
            # the state before any earlier run for the same date, which this run replaces
            "SELECT id, customer_id, dimension, value, valid_from FROM segment_history "
            f"WHERE valid_from < '{as_of.isoformat()}' "
            f"AND (valid_to IS NULL OR valid_to = '{as_of.isoformat()}')",
            dates=("valid_from",),
            types={"id": i64, "customer_id": i64, "dimension": text, "value": text},
        ),
        Query(
            "segments",
            "SELECT id, key, criteria FROM segment",
            types={"id": i64, "key": text, "criteria": text},
        ),
        Query(
            "clusters",
            "SELECT id, name, model FROM lifestyle_cluster",
            types={"id": i64, "name": text, "model": text},
        ),
        Query(
            "runs",
            "SELECT max(as_of) AS as_of, count(*) AS runs FROM analysis_run",
            dates=("as_of",),
            types={"runs": i64},
        ),
        value_stage.register_query(as_of),
    ]


@dataclass(slots=True)
class Report:
    """What a run did, for the command's summary and the `analysis_run` row."""

    as_of: date
    engine: str
    customers: int = 0
    classes: dict[str, int] = field(default_factory=dict)
    stages: dict[str, int] = field(default_factory=dict)
    segments: dict[str, int] = field(default_factory=dict)
    clusters: list[dict[str, Any]] = field(default_factory=list)
    quiet_slots: int = 0
    changes: int = 0
    seconds: float = 0.0
    value: dict[str, Any] = field(default_factory=dict)  # the value models, or why none

    def detail(self) -> dict[str, Any]:
        return {
            "classes": self.classes,
            "stages": self.stages,
            "segments": self.segments,
            "clusters": [{k: c[k] for k in ("id", "name", "size")} for c in self.clusters],
            "quiet_slots": self.quiet_slots,
            "changes": self.changes,
            "value": self.value,
            "seconds": round(self.seconds, 1),
        }


def analyze(
    url: str,
    *,
    as_of: date | None = None,
    engine: EngineKind | str = EngineKind.DUCKDB,
    master: str | None = None,
    settings: Settings | None = None,
    progress: Progress | None = None,
    work_dir: Path | None = None,
) -> Report:
    """Run every stage on the store at `url` and write the results back."""
    settings = settings or get_settings()
    step: Progress = progress or (lambda _stage: None)
    rules_ = _class_rules(settings)
    _zone(settings.timezone)
    started = utcnow()
    with tempfile.TemporaryDirectory(prefix="oppiva-analyze-", dir=work_dir) as tmp:
        folder = Path(tmp)
        step(STAGES[0])
        as_of = as_of or datetime.now(_zone(settings.timezone)).date()
        files = dump(url, queries(settings.timezone, as_of), folder / "in")
        _months_covered(files["products"])
        runs = pq.read_table(files["runs"])
        latest, seen = runs.column("as_of")[0].as_py(), runs.column("runs")[0].as_py()
        if latest is not None and as_of < latest:
            raise InvalidInput(
                "as_of", f"{as_of} is before the latest analysis ({latest}); history runs forward"
            )
        report = Report(as_of=as_of, engine=str(EngineKind(engine)))
        eng = open_engine(engine, master=master, work_dir=folder)
        try:
            outputs = _compute(eng, files, folder, as_of, settings, rules_, report, step)
        finally:
            eng.close()
        step(STAGES[6])
        writes = value_stage.card_writes(folder, files["value_register"], outputs.features, as_of)
        writes += _history_writes(files, outputs, folder, as_of, report)
        step(STAGES[7])
        report.seconds = (utcnow() - started).total_seconds()
        writes.append(_run_row(folder, report, started, seen))
        load(url, [*outputs.writes, *writes])
    return report


@dataclass(slots=True)
class _Outputs:
    features: Path
    memberships: Path
    writes: list[Write]


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput("OPPIVA_TIMEZONE", f"{name!r} is no time zone") from None


def _class_rules(settings: Settings) -> dict[str, Criteria]:
    parsed = {}
    for name in ("class_key", "class_regular", "action_end"):
        try:
            parsed[name] = validate(getattr(settings, name))
        except InvalidInput as exc:
            raise InvalidInput(f"OPPIVA_{name.upper()}", exc.reason) from None
    return parsed


def _compute(
    eng: Engine,
    files: dict[str, Path],
    folder: Path,
    as_of: date,
    settings: Settings,
    class_rules: dict[str, Criteria],
    report: Report,
    step: Progress,
) -> _Outputs:
    read = {name: eng.read(name, path) for name, path in files.items()}
    src = Sources(
        read["receipts"], read["lines"], read["products"], read["outlets"], read["customers"]
    )
    departments = sorted(
        str(d)
        for d in pq.read_table(files["products"], columns=["department"])
        .column(0)
        .unique()
        .to_pylist()
    )
    step(STAGES[1])
    live = src.customers.select(customer_id=src.customers.id)
    # Materialised once: every stage after this reads them again.
    lines = purchase_lines(src, as_of).cache()
    purchases = visits(src, lines).cache()
    features = customer_features(src, as_of, departments, lines, purchases)
    features = features.join(live, "customer_id")
    raw = folder / "features_raw.parquet"
    eng.write(features, raw)
    step(STAGES[2])
    valued = value_stage.run(raw, folder, as_of, settings)
    report.value = valued.summary

    step(STAGES[3])
    table = eng.read("features", raw)
    gaps = pq.read_table(raw, columns=["mean_interpurchase_days"]).column(0).drop_null()
    population_gap = float(np.median(gaps.to_numpy())) if len(gaps) else 30.0
    segments = pq.read_table(files["segments"]).to_pylist()
    criteria = {**class_rules, **{s["key"]: _saved(s) for s in segments}}
    scope = EngineScope(table, lines, src.products, as_of, departments)
    for parsed in criteria.values():
        scope.prepare([(call.name, call.values) for call in parsed.referenced().calls])
    t = scope.table
    t = rules.rfm(t)
    t = rules.relationship(
        t,
        to_ibis(criteria["class_key"], scope),
        to_ibis(criteria["class_regular"], scope),
        to_ibis(criteria["action_end"], scope),
    )
    previous = read["open_history"]
    stage_rows = previous.filter(previous.dimension == "stage").select(
        customer_id=previous.customer_id,
        prev_stage=previous.value,
        prev_since=previous.valid_from_day,
    )
    t = t.left_join(stage_rows, "customer_id").drop("customer_id_right")
    p_alive = None
    if valued.scores is not None:  # P(alive) < 0.5 is passivating
        alive = eng.read("value_scores", valued.scores).select("customer_id", "p_alive")
        t = t.left_join(alive, "customer_id").drop("customer_id_right")
        p_alive = t.p_alive
    t = rules.lifecycle(t, population_gap, day_number(as_of), p_alive)
    flags = {
        f"seg__{s['key']}": to_ibis(criteria[s["key"]], scope).fill_null(False) for s in segments
    }
    t = t.mutate(**flags) if flags else t
    scored = folder / "features_scored.parquet"
    eng.write(t.drop("prev_stage", "prev_since"), scored)
    return _finish(
        eng,
        src,
        purchases,
        files,
        folder,
        scored,
        departments,
        segments,
        as_of,
        settings,
        report,
        step,
    )


def _months_covered(products: Path) -> None:
    """Each product's `months_covered` attribute as a column (1 unless the attribute is a whole
    number from 2 to `MAX_MONTHS_COVERED`), in place of the attributes' JSON text."""

    def months(text: str | None) -> int:
        try:
            value = json.loads(text or "{}").get("months_covered")
        except (ValueError, AttributeError):
            return 1
        ok = isinstance(value, int) and not isinstance(value, bool)
        return value if ok and 1 < value <= MAX_MONTHS_COVERED else 1

    table = pq.read_table(products)
    covered = pa.array([months(t) for t in table.column("attributes").to_pylist()], pa.int64())
    table = table.drop_columns(["attributes"]).append_column("months_covered", covered)
    pq.write_table(table, products)


def _saved(segment: dict[str, Any]) -> Criteria:
    try:
        return validate(segment["criteria"])
    except InvalidInput as exc:
        raise InvalidInput(f"segment {segment['key']}", exc.reason) from None


# Customers the number of clusters is chosen on (the gap statistic grows fast with it).
CLUSTER_SAMPLE = 5_000
# Customers the clusters are fitted on; everyone else joins the nearest centre.
CLUSTER_FIT = 50_000
FEATURE_COLUMNS = [name for name in FEATURES if name not in ("first_purchase", "last_purchase")]
# The stored type of each kind: DuckDB sums integers to HUGEINT, which Parquet keeps as DOUBLE.
SQL_TYPES = {Kind.INT: "BIGINT", Kind.FLOAT: "DOUBLE", Kind.BOOL: "BOOLEAN", Kind.TEXT: "VARCHAR"}
SEGMENT_COLUMNS = [
    "rfm_r",
    "rfm_f",
    "rfm_m",
    "rfm_segment",
    "relationship_class",
    "relationship_action",
    "lifestyle_cluster",
    "lifecycle_stage",
]
# The history's dimensions: the column each one follows.
DIMENSIONS = {
    "class": "relationship_class",
    "action": "relationship_action",
    "rfm": "rfm_segment",
    "cluster": "lifestyle_cluster",
    "stage": "lifecycle_stage",
}


def _finish(
    eng: Engine,
    src: Sources,
    purchases: ir.Table,
    files: dict[str, Path],
    folder: Path,
    scored: Path,
    departments: list[str],
    segments: list[dict[str, Any]],
    as_of: date,
    settings: Settings,
    report: Report,
    step: Progress,
) -> _Outputs:
    step(STAGES[4])
    clusters = _clusters(files, scored, departments, as_of, report)
    step(STAGES[5])
    slots = quiet_slots(src.receipts, src.outlets, as_of, settings.quiet_share)
    slots_path = folder / "quiet_slots.parquet"
    eng.write(slots, slots_path)
    audience_path = folder / "quiet_audience.parquet"
    audience = quiet_audience(src.receipts, eng.read("slots", slots_path), as_of, src.customers)
    eng.write(audience, audience_path)
    profile_path = folder / "visit_profile.parquet"
    eng.write(visit_profile(purchases), profile_path)

    db = duckdb.connect()
    day = f"DATE '{as_of.isoformat()}'"
    db.execute(
        f"CREATE TABLE f AS SELECT s.*, c.cluster AS lifestyle_cluster FROM read_parquet('{scored}') s "
        f"LEFT JOIN read_parquet('{clusters}') c USING (customer_id)"
    )
    # JSON built per row, departments in name order: the same text on both engines
    pieces = ", ".join(
        f"CASE WHEN {share_column(d)} > 0 THEN {_quote(json.dumps(d) + ':')} "
        f"|| round({share_column(d)}, 4)::VARCHAR END"
        for d in departments
    )
    shares = f"NULLIF('{{' || concat_ws(',', {pieces}) || '}}', '{{}}')" if departments else "NULL"
    features_path = folder / "customer_feature.parquet"
    db.execute(
        f"""COPY (
            SELECT f.customer_id, {day} AS as_of,
                   DATE '1970-01-01' + f.first_day::INTEGER AS first_purchase,
                   DATE '1970-01-01' + f.last_day::INTEGER AS last_purchase,
                   {", ".join(f"f.{c}::{SQL_TYPES[FEATURES[c].kind]} AS {c}" for c in FEATURE_COLUMNS)},
                   {shares} AS department_shares,
                   p.profile AS visit_profile,
                   {", ".join(f"f.{c}" for c in SEGMENT_COLUMNS)}
            FROM f LEFT JOIN (
                SELECT customer_id, '{{' || string_agg(
                    '"' || {SLOT} || '":' || visits::VARCHAR, ',' ORDER BY weekday, hour
                ) || '}}' AS profile
                FROM read_parquet('{profile_path}') GROUP BY customer_id
            ) p USING (customer_id)
            ORDER BY f.customer_id
        ) TO '{features_path}' (FORMAT parquet)"""
    )
    ids = {s["key"]: s["id"] for s in segments}
    members_path = folder / "segment_member.parquet"
    member_rows = (
        " UNION ALL ".join(
            f"SELECT {ids[key]}::INTEGER AS segment_id, customer_id, {day} AS as_of FROM f "
            f'WHERE "seg__{key}"'
            for key in ids
        )
        or f"SELECT NULL::INTEGER AS segment_id, NULL::BIGINT AS customer_id, {day} AS as_of WHERE false"
    )
    db.execute(f"COPY ({member_rows}) TO '{members_path}' (FORMAT parquet)")
    slots_out = folder / "quiet_slot.parquet"
    db.execute(
        f"COPY (SELECT outlet_id, weekday::INTEGER AS weekday, hour::INTEGER AS hour, {day} AS as_of, "
        f"visits_per_week, sales_per_week, quiet FROM read_parquet('{slots_path}')) "
        f"TO '{slots_out}' (FORMAT parquet)"
    )
    audience_out = folder / "quiet_audience.parquet.out"
    db.execute(
        f"COPY (SELECT outlet_id, customer_id, {day} AS as_of, rank::INTEGER AS rank, score, "
        f"quiet_visits::INTEGER AS quiet_visits FROM read_parquet('{audience_path}')) "
        f"TO '{audience_out}' (FORMAT parquet)"
    )
    report.customers = db.execute("SELECT count(*) FROM f").fetchone()[0]  # type: ignore[index]
    report.classes = _counts(db, "relationship_class")
    report.stages = _counts(db, "lifecycle_stage")
    report.segments = {
        key: db.execute(f'SELECT count(*) FROM f WHERE "seg__{key}"').fetchone()[0]  # type: ignore[index]
        for key in ids
    }
    report.quiet_slots = db.execute(
        f"SELECT count(*) FROM read_parquet('{slots_path}') WHERE quiet"
    ).fetchone()[0]  # type: ignore[index]
    db.close()
    return _Outputs(
        features=features_path,
        memberships=members_path,
        writes=[
            Write("customer_feature", features_path, before=["DELETE FROM customer_feature"]),
            Write("segment_member", members_path, before=["DELETE FROM segment_member"]),
            Write("quiet_slot", slots_out, before=["DELETE FROM quiet_slot"]),
            Write("quiet_audience", audience_out, before=["DELETE FROM quiet_audience"]),
            Write(
                "lifestyle_cluster",
                folder / "lifestyle_cluster.parquet",
                before=["DELETE FROM lifestyle_cluster"],
            ),
        ],
    )


SLOT = "['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'][weekday + 1] || ' ' || lpad(hour::VARCHAR, 2, '0')"


def _counts(db: duckdb.DuckDBPyConnection, column: str) -> dict[str, int]:
    rows = db.execute(
        f"SELECT {column}, count(*) FROM f WHERE {column} IS NOT NULL GROUP BY 1 ORDER BY 1"
    ).fetchall()
    return {str(k): int(n) for k, n in rows}


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _history_writes(
    files: dict[str, Path], outputs: _Outputs, folder: Path, as_of: date, report: Report
) -> list[Write]:
    """Close what changed and open what is new: the history runs from date to date."""
    db = duckdb.connect()
    state = " UNION ALL ".join(
        f"SELECT customer_id, '{dimension}' AS dimension, {column}::VARCHAR AS value "
        f"FROM read_parquet('{outputs.features}') WHERE {column} IS NOT NULL"
        for dimension, column in DIMENSIONS.items()
    )
    state += (
        " UNION ALL SELECT m.customer_id, 'segment:' || s.key, 'member' "
        f"FROM read_parquet('{outputs.memberships}') m "
        f"JOIN read_parquet('{files['segments']}') s ON s.id = m.segment_id"
    )
    db.execute(f"CREATE TABLE new AS {state}")
    db.execute(f"CREATE TABLE old AS SELECT * FROM read_parquet('{files['open_history']}')")
    closing = folder / "history_close.parquet"
    opening = folder / "history_open.parquet"
    db.execute(
        "COPY (SELECT o.id FROM old o LEFT JOIN new n USING (customer_id, dimension) "
        f"WHERE n.value IS DISTINCT FROM o.value) TO '{closing}' (FORMAT parquet)"
    )
    day = as_of.isoformat()
    db.execute(
        f"COPY (SELECT n.customer_id, n.dimension, n.value, DATE '{day}' AS valid_from "
        "FROM new n LEFT JOIN old o USING (customer_id, dimension) "
        f"WHERE o.value IS DISTINCT FROM n.value) TO '{opening}' (FORMAT parquet)"
    )
    report.changes = db.execute(f"SELECT count(*) FROM read_parquet('{opening}')").fetchone()[0]  # type: ignore[index]
    db.close()
    return [
        Write(
            "segment_history",
            closing,
            staged="oppiva_history_close",
            before=[
                f"DELETE FROM segment_history WHERE valid_from = '{day}'",
                f"UPDATE segment_history SET valid_to = NULL WHERE valid_to = '{day}'",
                "CREATE TEMPORARY TABLE oppiva_history_close (id BIGINT)",
            ],
            after=[
                f"UPDATE segment_history SET valid_to = '{day}' "
                "WHERE id IN (SELECT id FROM oppiva_history_close)",
                "DROP TABLE oppiva_history_close",
            ],
        ),
        Write("segment_history", opening),
    ]


def _run_row(folder: Path, report: Report, started: datetime, seen: int) -> Write:
    """The run's own row, written last: it stands only if no other run was written since this
    one read the store (`seen` runs then), or the history would be opened twice."""
    path = folder / "analysis_run.parquet"
    row = {
        "as_of": report.as_of,
        "engine": report.engine,
        "started_at": started.replace(tzinfo=None),
        "finished_at": utcnow().replace(tzinfo=None),
        "customers": report.customers,
        "detail": json.dumps(report.detail()),
    }
    pq.write_table(pa.Table.from_pylist([row]), path)
    clash = "another analysis was written while this one ran; its results stand: run this one again"
    return Write(
        "analysis_run", path, expect=("SELECT count(*) FROM analysis_run", seen + 1, clash)
    )


def _clusters(
    files: dict[str, Path], scored: Path, departments: list[str], as_of: date, report: Report
) -> Path:
    """Fit the lifestyle clusters on the year's buyers; (customer_id, cluster) to Parquet and
    the clusters themselves to lifestyle_cluster.parquet."""
    from oppiva.segments.clusters import ClusterResult, assign, fit_clusters

    shares = [share_column(d) for d in departments]
    behaviour = ["visits_365d", "avg_basket_365d", "mean_interpurchase_days", "return_rate_365d"]
    table = pq.read_table(scored, columns=["customer_id", *shares, *behaviour])
    # in customer order: the engines write rows in their own order, k-means must not see it
    table = table.filter(pc.greater(table.column("visits_365d"), 0)).sort_by("customer_id")
    folder = scored.parent
    assigned = folder / "clusters.parquet"
    rows: list[dict[str, Any]] = []
    if table.num_rows == 0:
        pq.write_table(
            pa.table(
                {"customer_id": pa.array([], pa.int64()), "cluster": pa.array([], pa.int64())}
            ),
            assigned,
        )
    else:
        stored = pq.read_table(files["clusters"]).column("model").to_pylist()
        previous = ClusterResult.from_dict(json.loads(stored[0])) if stored else None
        labels = dict(zip(shares, departments, strict=True))
        fitted_on = table
        if table.num_rows > CLUSTER_FIT:  # a fixed sample: the same store, the same clusters
            rng = np.random.default_rng(0)
            fitted_on = table.take(np.sort(rng.choice(table.num_rows, CLUSTER_FIT, replace=False)))
        result = fit_clusters(
            fitted_on,
            shares,
            behaviour,
            previous=previous,
            labels=labels,
            sample_size=CLUSTER_SAMPLE,
        )
        placed = assign(table, result)
        ids, counts = np.unique(placed.column("cluster_id").to_numpy(), return_counts=True)
        sizes = dict(zip(ids.tolist(), counts.tolist(), strict=True))
        pq.write_table(
            pa.table(
                {
                    "customer_id": placed.column("customer_id"),
                    "cluster": placed.column("cluster_id"),
                }
            ),
            assigned,
        )
        model = json.dumps(result.to_dict())
        for cluster in result.clusters:
            profile = {
                "departments": list(cluster.departments),
                "shares": {labels[c]: round(v, 4) for c, v in cluster.shares.items()},
                "behaviour": {c: round(v, 3) for c, v in cluster.behaviour.items()},
            }
            rows.append(
                {
                    "id": cluster.id,
                    "name": cluster.name,
                    "size": sizes.get(cluster.id, 0),
                    "as_of": as_of,
                    "profile": json.dumps(profile),
                    "model": model,
                }
            )
            report.clusters.append(
                {"id": cluster.id, "name": cluster.name, "size": sizes.get(cluster.id, 0)}
            )
    schema = pa.schema(
        [
            ("id", pa.int64()),
            ("name", pa.string()),
            ("size", pa.int64()),
            ("as_of", pa.date32()),
            ("profile", pa.string()),
            ("model", pa.string()),
        ]
    )
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), folder / "lifestyle_cluster.parquet")
    return assigned
