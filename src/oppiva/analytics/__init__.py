"""The analytics engine: store tables to DuckDB or Spark as Arrow, features as Ibis expressions."""

from enum import StrEnum


class EngineKind(StrEnum):
    """Where the analysis runs: DuckDB in process, or Spark (local or a cluster). Kept here,
    away from the engines' heavy imports, for the command line's options."""

    DUCKDB = "duckdb"
    SPARK = "spark"
