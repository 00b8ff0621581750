"""What every route depends on: the store, and a session whose transaction the request owns."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import anyio
import anyio.to_thread
from fastapi import Depends, Request
from sqlalchemy.orm import Session

from oppiva.db import Store


def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def _commit(session: Session) -> None:
    with session:
        session.commit()


def _roll_back(session: Session) -> None:
    with session:
        session.rollback()


async def get_session(request: Request) -> AsyncIterator[Session]:
    """One transaction per request: committed when the route returns, rolled back when it raises.

    Async so that opening the session (no I/O until the first statement) costs no trip to a
    worker thread; the commit or rollback runs in one, shielded from a client's disconnect."""
    session = get_store(request).sessions()
    try:
        yield session
    except BaseException:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(_roll_back, session)
        raise
    with anyio.CancelScope(shield=True):
        await anyio.to_thread.run_sync(_commit, session)


StoreDep = Annotated[Store, Depends(get_store)]
# "function": commit before the response is sent, so a 2xx always means stored.
DbSession = Annotated[Session, Depends(get_session, scope="function")]
