"""The analytics engine: store tables to DuckDB or Spark as Arrow, features as Ibis expressions."""
