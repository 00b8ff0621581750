"""Tiers count business days in the business's time zone (Helsinki here): just after midnight
in Helsinki it is already the next day, though UTC still has the day before; on both databases."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from oppiva.config import get_settings
from oppiva.db import Store
from oppiva.loyalty import ledger, tiers
from tests.factories import make_customer

MONTHLY = "- {key: gold, name: Gold, threshold: 100, measure: points_earned, period_months: 1}"
YEARLY = "- {key: gold, name: Gold, threshold: 100, measure: points_earned}"
# 00:30 on 1 June 2026 in Helsinki (summer time, UTC+3) is 21:30 on 31 May in UTC.
JUST_AFTER_MIDNIGHT = datetime(2026, 5, 31, 21, 30, tzinfo=UTC)


@pytest.fixture
def member(db: Store) -> int:
    assert get_settings().timezone == "Europe/Helsinki"
    with db.transaction() as session:
        ledger.create_programme(session, "plussa", "Plussa")
        customer = make_customer(session)
        ledger.join(session, "plussa", customer.id, at=datetime(2026, 1, 1, tzinfo=UTC))
        return customer.id


def earn(session, customer: int, points: int, when: datetime) -> None:
    ledger.earn(
        session,
        "plussa",
        customer,
        points,
        source="test",
        external_id=when.isoformat(),
        rule="test",
        at=when,
    )


def test_the_rolling_window_holds_business_dates(db: Store, member: int) -> None:
    """At 00:30 on 1 June in Helsinki a month's window holds 2 May to 1 June: 23:00 on 1 May
    in Helsinki (20:00 UTC) has left it, though in UTC days it would still be inside."""
    with db.transaction() as session:
        tiers.set_tiers(session, "plussa", MONTHLY)
        earn(session, member, 60, datetime(2026, 5, 1, 20, 0, tzinfo=UTC))  # 1 May, 23:00
        earn(session, member, 50, datetime(2026, 5, 1, 21, 0, tzinfo=UTC))  # 2 May, 00:00
        status = tiers.qualify(session, "plussa", member, JUST_AFTER_MIDNIGHT)
    assert status.measure == 50
    assert status.tier is None


def test_the_tier_is_kept_to_the_end_of_the_business_month(db: Store, member: int) -> None:
    """Reached at 00:30 on 1 June in Helsinki, a 12-month tier is kept until 30 June 2027
    (counted from May, as UTC days would, it would end on 31 May)."""
    with db.transaction() as session:
        tiers.set_tiers(session, "plussa", YEARLY)
        earn(session, member, 150, JUST_AFTER_MIDNIGHT)
        status = tiers.qualify(session, "plussa", member, JUST_AFTER_MIDNIGHT)
    assert (status.tier, status.kept_until) == ("gold", date(2027, 6, 30))


def test_a_tier_kept_until_a_date_ends_at_midnight_in_helsinki(db: Store, member: int) -> None:
    with db.transaction() as session:
        tiers.set_tiers(session, "plussa", MONTHLY)
        earn(session, member, 150, datetime(2026, 3, 10, 10, tzinfo=UTC))
        reached = tiers.qualify(session, "plussa", member, datetime(2026, 3, 10, 10, tzinfo=UTC))
        assert reached.kept_until == date(2026, 4, 30)
        # 23:30 on 30 April in Helsinki: still the last day.
        kept = tiers.qualify(session, "plussa", member, datetime(2026, 4, 30, 20, 30, tzinfo=UTC))
        assert kept.tier == "gold"
        # 00:30 on 1 May in Helsinki, still 30 April in UTC: the date has passed.
        gone = tiers.qualify(session, "plussa", member, datetime(2026, 4, 30, 21, 30, tzinfo=UTC))
    assert gone.tier is None
