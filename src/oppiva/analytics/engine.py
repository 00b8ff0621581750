"""The two engines behind one Ibis connection: DuckDB in-process, Spark for a cluster.

Every computation is an Ibis expression, so the same definition runs on both; the engine
only says where the Parquet files are read and where the results are written.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import ibis
import pyarrow as pa
import pyarrow.parquet as pq
from ibis.backends import BaseBackend

from oppiva.analytics import EngineKind as EngineKind


class Engine:
    """An Ibis backend with Parquet in and Parquet or Arrow out."""

    def __init__(self, kind: EngineKind, con: BaseBackend, session: Any = None) -> None:
        self.kind = kind
        self.con: Any = con
        self._session = session

    def read(self, name: str, path: Path) -> ibis.Table:
        """The Parquet file at `path` (or the folder of part files) as the engine's table `name`."""
        source = (
            str(path / "*.parquet")
            if path.is_dir() and self.kind is EngineKind.DUCKDB
            else str(path)
        )
        return self.con.read_parquet(source, table_name=name)

    def arrow(self, expr: ibis.Table) -> pa.Table:
        """A (small) result on the driver."""
        return self.con.to_pyarrow(expr)

    def write(self, expr: ibis.Table, path: Path) -> pa.Schema:
        """A (large) result to Parquet, written by the engine's own workers."""
        if self.kind is EngineKind.DUCKDB:
            self.con.to_parquet(expr, str(path))
            return pq.read_schema(path)
        folder = path.with_suffix(".parts")
        self.con.to_parquet(expr, str(folder), mode="overwrite")
        table = pq.read_table(folder)
        pq.write_table(table, path)
        return table.schema

    def close(self) -> None:
        if self._session is not None:
            self._session.stop()
        else:
            self.con.disconnect()


def open_engine(
    kind: EngineKind | str = EngineKind.DUCKDB,
    *,
    master: str | None = None,
    memory_limit: str | None = None,
    work_dir: Path | None = None,
) -> Engine:
    """Start an engine: DuckDB (threads = cores) or Spark (`local[*]` unless `master` says)."""
    kind = EngineKind(kind)
    if kind is EngineKind.DUCKDB:
        config = {"memory_limit": memory_limit} if memory_limit else {}
        return Engine(kind, ibis.duckdb.connect(**config))
    from pyspark.sql import SparkSession

    warehouse = work_dir or Path(tempfile.mkdtemp(prefix="oppiva-spark-"))
    builder = (
        SparkSession.builder.appName("oppiva")
        .master(master or os.environ.get("OPPIVA_SPARK_MASTER", "local[*]"))
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.warehouse.dir", str(warehouse / "warehouse"))
        .config("spark.sql.shuffle.partitions", os.environ.get("OPPIVA_SPARK_PARTITIONS", "8"))
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.driver.memory", memory_limit or "2g")
    )
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return Engine(kind, ibis.pyspark.connect(session), session)
