"""What every route depends on: the store, and a session whose transaction the request owns."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from oppiva.db import Store


def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def get_session(request: Request) -> Iterator[Session]:
    """One transaction per request: committed when the route returns, rolled back when it raises."""
    store = get_store(request)
    with store.sessions() as session, session.begin():
        yield session


StoreDep = Annotated[Store, Depends(get_store)]
# "function": commit before the response is sent, so a 2xx always means stored.
DbSession = Annotated[Session, Depends(get_session, scope="function")]
