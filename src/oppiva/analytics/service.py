"""Reading what the analysis wrote: a store's quiet hours and their audience. Services never
commit: the adapter owns the transaction."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from oppiva.analytics.models import QuietAudience, QuietSlot
from oppiva.errors import NotFound
from oppiva.purchases.models import Outlet


def _outlet(session: Session, code: str) -> Outlet:
    outlet = session.scalar(select(Outlet).where(Outlet.code == code))
    if outlet is None:
        raise NotFound(f"store {code!r} does not exist")
    return outlet


def quiet_slots(session: Session, code: str) -> Sequence[QuietSlot]:
    """The store's weekday x hour cells of the latest analysis, Monday 00 first."""
    outlet = _outlet(session, code)
    slots = session.scalars(
        select(QuietSlot)
        .where(QuietSlot.outlet_id == outlet.id)
        .order_by(QuietSlot.weekday, QuietSlot.hour)
    ).all()
    if not slots:
        raise NotFound(f"no quiet-hour analysis for {code!r}: run `oppiva analyze` first")
    return slots


def quiet_audience(session: Session, code: str, limit: int) -> Sequence[QuietAudience]:
    """The customers most likely to come in the store's quiet hours, best first."""
    outlet = _outlet(session, code)
    return session.scalars(
        select(QuietAudience)
        .where(QuietAudience.outlet_id == outlet.id)
        .order_by(QuietAudience.rank)
        .limit(limit)
    ).all()
