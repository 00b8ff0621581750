"""What every route depends on: a session whose transaction the request owns, and the actor."""

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


def get_actor(request: Request) -> str:
    """Who is acting, for the merge and consent records."""
    return "api"


StoreDep = Annotated[Store, Depends(get_store)]
# "function": commit before the response is sent, so a 2xx always means stored.
DbSession = Annotated[Session, Depends(get_session, scope="function")]
Actor = Annotated[str, Depends(get_actor)]
