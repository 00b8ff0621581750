"""A programme with one member, committed, for the ledger tests."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from oppiva.db import Store
from oppiva.loyalty import ledger
from tests.factories import make_customer

WHEN = datetime(2026, 5, 4, 10, 30, tzinfo=UTC)


@pytest.fixture
def member(db: Store) -> int:
    """Customer id of the one member of programme "plussa" (return window 14 days, expiry 24
    months)."""
    with db.transaction() as session:
        ledger.create_programme(session, "plussa", "Plussa")
        customer = make_customer(session)
        ledger.join(session, "plussa", customer.id, at=WHEN)
        return customer.id
