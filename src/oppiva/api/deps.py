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


REQUEST_SESSION = "oppiva.session"
"""The key of the request's scope state that holds the session the credential was checked in."""


def close_session(session: Session, commit: bool = True) -> None:
    """End the session's transaction (committed, or rolled back) and give its connection back."""
    with session:
        if commit:
            session.commit()
        else:
            session.rollback()


def _roll_back(session: Session) -> None:
    close_session(session, commit=False)


async def get_session(request: Request) -> AsyncIterator[Session]:
    """One transaction per request: committed when the route returns, rolled back when it raises.

    The session the guard checked the credential in, when there is one (one pool checkout a
    request); else a new one, which is async to open (no I/O until the first statement) so that
    it costs no trip to a worker thread. The commit or rollback runs in one, shielded from a
    client's disconnect."""
    state = request.scope.get("state", {})
    session: Session = state.pop(REQUEST_SESSION, None) or get_store(request).sessions()
    try:
        yield session
    except BaseException:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(_roll_back, session)
        raise
    with anyio.CancelScope(shield=True):
        await anyio.to_thread.run_sync(close_session, session)


StoreDep = Annotated[Store, Depends(get_store)]
# "function": commit before the response is sent, so a 2xx always means stored.
DbSession = Annotated[Session, Depends(get_session, scope="function")]
