"""The analysis's personal data: a customer's features, classes and history are theirs too."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from oppiva.analytics.models import CustomerFeature, QuietAudience
from oppiva.plugins import CustomerLink, hookimpl
from oppiva.segments.models import SegmentHistory, SegmentMember
from oppiva.segments.service import customer_segments


@hookimpl
def oppiva_derived_links() -> list[CustomerLink]:
    tables = (CustomerFeature, SegmentMember, SegmentHistory, QuietAudience)
    return [CustomerLink(t.__table__, "customer_id") for t in tables]  # type: ignore[arg-type]


@hookimpl
def oppiva_export_person(session: Session, customer_id: int) -> dict[str, Any]:
    history = session.scalars(
        select(SegmentHistory)
        .where(SegmentHistory.customer_id == customer_id)
        .order_by(SegmentHistory.dimension, SegmentHistory.valid_from)
    ).all()
    return {
        "segmentation": customer_segments(session, customer_id),
        "segmentation_history": [
            {
                "dimension": h.dimension,
                "value": h.value,
                "valid_from": h.valid_from.isoformat(),
                "valid_to": None if h.valid_to is None else h.valid_to.isoformat(),
            }
            for h in history
        ],
    }


@hookimpl
def oppiva_erase_person(session: Session, customer_id: int) -> None:
    for table in (CustomerFeature, SegmentMember, SegmentHistory, QuietAudience):
        session.execute(delete(table).where(table.customer_id == customer_id))


@hookimpl
def oppiva_customer_card(session: Session, customer_id: int) -> dict[str, Any]:
    found = customer_segments(session, customer_id)
    return {} if found is None else {"segmentation": found}
