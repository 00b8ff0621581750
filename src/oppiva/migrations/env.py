"""Alembic environment: runs the packaged migrations on the engine handed over in the config."""

from __future__ import annotations

from alembic import context

import oppiva.models  # noqa: F401  (registers every table)
from oppiva.db import Base

config = context.config
engine = config.attributes["engine"]

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    context.run_migrations()
