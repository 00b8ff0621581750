"""oppiva: an engine for one-to-one marketing, the learning customer relationship."""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from oppiva.db import Store


def connect(url: str | None = None, *, upgrade: bool = True) -> Store:
    """Open the store at `url` (default: `OPPIVA_DATABASE_URL`) for scripts and notebooks.

    >>> db = oppiva.connect("sqlite:///shop.db")
    >>> with db.transaction() as session:
    ...     customers.find_customers(session, "maija@example.fi")
    """
    from oppiva.db import Store

    store = Store(url)
    if upgrade:
        store.upgrade()
    return store
