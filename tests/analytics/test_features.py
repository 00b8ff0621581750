"""The customer features, RFM, classes, stages and quiet hours of a hand-made chain, every
value worked out by hand, on SQLite and on PostgreSQL.

The analysis date is Tuesday 2026-06-30; the business's clock is Europe/Helsinki (UTC+3 in
summer, UTC+2 in winter), so a receipt at 21:30 UTC is the next day's 00:30.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from oppiva.analytics.catalogue import FEATURES
from oppiva.analytics.models import QuietAudience, QuietSlot
from oppiva.config import Settings
from oppiva.db import Store
from oppiva.segments.models import Segment, SegmentMember
from oppiva.segments.service import define_segment
from tests.analytics.conftest import buy, feature_rows, make_catalogue, mismatches, run, utc
from tests.factories import make_customer

AS_OF = date(2026, 6, 30)


def _chain(db: Store) -> dict[str, int]:
    """Five customers; products: MILK 1.00 (cost 0.70) and CHEESE 5.00 (cost 3.00) in Dairy,
    APPLE 2.00 (no cost) in Fresh food, SHIRT 20.00 (cost 12.00) in Clothing, LAMP 30.00
    (no cost) in Home. Ages are days before AS_OF in local time."""
    with db.transaction() as s:
        make_catalogue(s)
        ids = {
            who: make_customer(s, name=who.title(), emails=[f"{who}@example.fi"]).id
            for who in ("aino", "bertta", "carita", "daavid", "eemeli")
        }
        a, b, c, d, e = (f"{who}@example.fi" for who in ids)
        # Aino: five visits over 16 months, a return, both channels.
        # 06-29 21:30 UTC is Tue 06-30 00:30 local: age 0, hour 0.
        buy(s, "A1", utc("2026-06-29 21:30"), "kamppi", a, ("MILK", 2), ("CHEESE", 1))
        # Wed 06-10 11:00, age 20: 6.00 + 20.00
        buy(s, "A2", utc("2026-06-10 08:00"), "kamppi", a, ("APPLE", 3), ("SHIRT", 1))
        # Fri 06-12, age 18: the shirt comes back (a return only: no visit)
        buy(s, "A3", utc("2026-06-12 10:00"), "kamppi", a, ("SHIRT", -1, "A2"))
        # Wed 04-15 12:00, age 76, web: 1.00 + 30.00
        buy(s, "A4", utc("2026-04-15 09:00"), "web", a, ("MILK", 1), ("LAMP", 1))
        # Tue 01-20 12:00 (winter, UTC+2), age 161, web: 10.00
        buy(s, "A5", utc("2026-01-20 10:00"), "web", a, ("CHEESE", 2))
        # Sat 2025-03-01 12:00, age 486: 4.00
        buy(s, "A6", utc("2025-03-01 10:00"), "kamppi", a, ("MILK", 4))
        # 06-30 21:30 UTC is already 07-01 in Helsinki: after the analysis date, ignored.
        buy(s, "A7", utc("2026-06-30 21:30"), "kamppi", a, ("LAMP", 10))
        # Bertta: two store visits, Sat 06-20 09:00 (age 10) and Wed 05-20 09:00 (age 41).
        buy(s, "B1", utc("2026-06-20 06:00"), "tampere", b, ("APPLE", 5))
        buy(s, "B2", utc("2026-05-20 06:00"), "tampere", b, ("APPLE", 2), ("MILK", 1))
        # Carita: one visit more than a year ago, Sun 2025-06-01 15:00 (age 394).
        buy(s, "C1", utc("2025-06-01 12:00"), "kamppi", c, ("LAMP", 1))
        # Daavid: web only, Thu 06-25 18:00 (age 5) and Sun 06-28 18:00 (age 2).
        buy(s, "D1", utc("2026-06-25 15:00"), "web", d, ("SHIRT", 1))
        buy(s, "D2", utc("2026-06-28 15:00"), "web", d, ("LAMP", 1))
        # Eemeli buys only after the analysis date; nobody's anonymous receipt counts.
        buy(s, "E1", utc("2026-07-02 10:00"), "kamppi", e, ("MILK", 1))
        buy(s, "X1", utc("2026-06-29 10:00"), "kamppi", None, ("LAMP", 3))
    return ids


EXPECTED: dict[str, dict[str, Any]] = {
    "aino": {
        "first_purchase": date(2025, 3, 1),
        "last_purchase": date(2026, 6, 30),  # 00:30 local, not 06-29 as in UTC
        "recency_days": 0,
        "tenure_days": 486,
        "visits_total": 5,  # A1 A2 A4 A5 A6; the return A3 is no visit, A7 is too late
        "visits_30d": 2,  # ages 0, 20
        "visits_90d": 3,  # + 76
        "visits_365d": 4,  # + 161
        "spend_total": 58.0,  # 7 + 26 - 20 + 31 + 10 + 4
        "spend_30d": 13.0,  # 7 + 26 - 20
        "spend_90d": 44.0,  # 13 + 31
        "spend_365d": 54.0,  # 44 + 10
        "avg_basket_365d": 13.5,  # 54 / 4
        "avg_monthly_spend_365d": 4.5,  # 54 / 12
        "units_365d": 10.0,  # 2 + 1 + 3 + 1 - 1 + 1 + 1 + 2
        # (2.00-1.40) + (5-3) + (20-12) + (-20+12) + (1-0.70) + (10-6); apples, lamp: no cost
        "margin_365d": 6.9,
        "margin_rate_365d": 6.9 / 18.0,  # on 2 + 5 + 20 - 20 + 1 + 10
        "groups_365d": 5,  # Milk, Cheese, Fruit, Shirts, Lighting
        "departments_365d": 4,  # Dairy, Fresh food, Clothing, Home
        "top_department_365d": "Home",  # Home 30, Dairy 2+5+1+10 = 18, Fresh 6, Clothing 0
        "preferred_store": "kamppi",  # 3 visits against the web's 2
        "preferred_channel": "store",
        "channels_used": 2,
        "omnichannel": True,
        "favourite_weekday": 1,  # Tue (A1, A5) and Wed (A2, A4) tie: the smaller
        "favourite_hour": 12,  # A4, A5, A6
        "return_rate_365d": 20.0 / 74.0,  # returned 20 of 7 + 26 + 31 + 10 bought
        "mean_interpurchase_days": 121.5,  # 486 / (5 - 1)
        "trend_90d": (44.0 - 10.0) / 44.0,  # 90 days 44, the 90 before (A5) 10
    },
    "bertta": {
        "first_purchase": date(2026, 5, 20),
        "last_purchase": date(2026, 6, 20),
        "recency_days": 10,
        "tenure_days": 41,
        "visits_total": 2,
        "visits_30d": 1,
        "visits_90d": 2,
        "visits_365d": 2,
        "spend_total": 15.0,  # 10 + 4 + 1
        "spend_30d": 10.0,
        "spend_90d": 15.0,
        "spend_365d": 15.0,
        "avg_basket_365d": 7.5,  # 15 / 2
        "avg_monthly_spend_365d": 1.25,  # 15 / 12
        "units_365d": 8.0,  # 5 + 2 + 1
        "margin_365d": 0.3,  # the milk only: 1.00 - 0.70
        "margin_rate_365d": 0.3,  # 0.30 / 1.00
        "groups_365d": 2,
        "departments_365d": 2,
        "top_department_365d": "Fresh food",  # 14 against Dairy's 1
        "preferred_store": "tampere",
        "preferred_channel": "store",
        "channels_used": 1,
        "omnichannel": False,
        "favourite_weekday": 2,  # Sat and Wed tie: Wed
        "favourite_hour": 9,
        "return_rate_365d": 0.0,
        "mean_interpurchase_days": 31.0,  # (41 - 10) / 1
        "trend_90d": 1.0,  # (15 - 0) / 15
    },
    "carita": {
        "first_purchase": date(2025, 6, 1),
        "last_purchase": date(2025, 6, 1),
        "recency_days": 394,
        "tenure_days": 394,
        "visits_total": 1,
        "visits_30d": 0,
        "visits_90d": 0,
        "visits_365d": 0,
        "spend_total": 30.0,
        "spend_30d": 0.0,
        "spend_90d": 0.0,
        "spend_365d": 0.0,
        "avg_basket_365d": None,  # no visit in the year
        "avg_monthly_spend_365d": 0.0,
        "units_365d": 0.0,
        "margin_365d": None,  # no line with a cost in the year
        "margin_rate_365d": None,
        "groups_365d": 0,
        "departments_365d": 0,
        "top_department_365d": None,
        "preferred_store": "kamppi",
        "preferred_channel": "store",
        "channels_used": 1,
        "omnichannel": False,
        "favourite_weekday": 6,  # Sunday
        "favourite_hour": 15,
        "return_rate_365d": None,  # nothing bought in the year
        "mean_interpurchase_days": None,  # one visit
        "trend_90d": None,  # 0 against 0
    },
    "daavid": {
        "first_purchase": date(2026, 6, 25),
        "last_purchase": date(2026, 6, 28),
        "recency_days": 2,
        "tenure_days": 5,
        "visits_total": 2,
        "visits_30d": 2,
        "visits_90d": 2,
        "visits_365d": 2,
        "spend_total": 50.0,
        "spend_30d": 50.0,
        "spend_90d": 50.0,
        "spend_365d": 50.0,
        "avg_basket_365d": 25.0,
        "avg_monthly_spend_365d": 50.0 / 12,
        "units_365d": 2.0,
        "margin_365d": 8.0,  # the shirt: 20 - 12
        "margin_rate_365d": 0.4,  # 8 / 20
        "groups_365d": 2,
        "departments_365d": 2,
        "top_department_365d": "Home",  # 30 against Clothing's 20
        "preferred_store": "web",
        "preferred_channel": "web",
        "channels_used": 1,
        "omnichannel": False,
        "favourite_weekday": 3,  # Thu and Sun tie: Thu
        "favourite_hour": 18,
        "return_rate_365d": 0.0,
        "mean_interpurchase_days": 3.0,  # (5 - 2) / 1
        "trend_90d": 1.0,
    },
}

SHARES = {
    # Aino: Dairy 18, Fresh food 6, Home 30 of 54 (Clothing nets to 0 and is left out)
    "aino": {"Dairy": 0.3333, "Fresh food": 0.1111, "Home": 0.5556},
    "bertta": {"Fresh food": 0.9333, "Dairy": 0.0667},  # 14 and 1 of 15
    "carita": None,  # nothing in the year
    "daavid": {"Clothing": 0.4, "Home": 0.6},  # 20 and 30 of 50
}

# n = 4 buyers; score = rank * 5 // 4 + 1 with rank 0..3 (ties share the lower rank).
RFM = {
    # recency 394 > 10 > 2 > 0: C B D A; visits 0 < 2 = 2 < 4: C, B and D tied, A;
    # spend 0 < 15 < 50 < 54: C B D A
    "aino": (4, 4, 4, "Loyal"),
    "bertta": (2, 2, 2, "Hibernating"),
    "carita": (1, 1, 1, "Hibernating"),
    "daavid": (3, 2, 3, "About to sleep"),  # shares F = 2 with Bertta
}

# The default settings: nobody reaches 12 visits, so every buyer of the year is occasional;
# to change or end needs a negative margin or returns over 0.3. Stages: the population's
# rhythm (median of 121.5, 31 and 3 days: 31) is not needed, everyone has a rhythm or a year.
SEGMENTATION = {
    # tenure 486; trend 0.77 >= 0.25 with 3 visits in 90 days; returns 0.27
    "aino": ("occasional", "develop", "deepening"),
    "bertta": ("occasional", "develop", "new"),  # tenure 41 < 90
    "carita": (None, None, "lapsed"),  # no visit in the year; recency 394 > 365
    "daavid": ("occasional", "develop", "new"),  # tenure 5
}


SEGMENTS = {
    # Dairy units in the year: Aino 2 + 1 + 1 + 2 = 6; Home's share: Aino 0.56, Daavid 0.6
    "dairy-home": ('units_in("Dairy", 365) >= 6 and share("home") > 0.5', {"aino"}),
    # Fruit visits: Bertta 2, Aino 1; lamps in 90 days: Aino (age 76), Daavid (age 2)
    "fruit-or-lamp": (
        'visits_in("Fruit") >= 2 or spend_in("Lighting", 90) >= 30',
        {"aino", "bertta", "daavid"},
    ),
}


def test_every_feature_of_the_catalogue_by_hand(db: Store) -> None:
    ids = _chain(db)
    with db.transaction() as s:
        for key, (criteria, _) in SEGMENTS.items():
            define_segment(s, key, criteria)
    report = run(db, AS_OF)
    rows = feature_rows(db)
    assert report.customers == 4
    assert set(rows) == {ids[who] for who in EXPECTED}  # Eemeli has bought nothing yet
    for who, expected in EXPECTED.items():
        assert set(expected) == set(FEATURES)
        row = rows[ids[who]]
        got = {name: row[name] for name in FEATURES}
        assert mismatches(got, expected) == [], who
        assert row["as_of"] == AS_OF
        shares = row["department_shares"]
        assert (json.loads(shares) if shares is not None else None) == SHARES[who], who
        assert (row["rfm_r"], row["rfm_f"], row["rfm_m"], row["rfm_segment"]) == RFM[who], who
        segmentation = (row["relationship_class"], row["relationship_action"])
        assert (*segmentation, row["lifecycle_stage"]) == SEGMENTATION[who], who
    assert report.classes == {"occasional": 3}
    assert report.stages == {"deepening": 1, "lapsed": 1, "new": 2}
    names = {i: who for who, i in ids.items()}
    with db.transaction() as s:
        keys = dict(s.execute(select(Segment.id, Segment.key)).tuples().all())
        members: dict[str, set[str]] = {key: set() for key in SEGMENTS}
        for m in s.scalars(select(SegmentMember)):
            assert m.as_of == AS_OF
            members[keys[m.segment_id]].add(names[m.customer_id])
    assert members == {key: who for key, (_, who) in SEGMENTS.items()}
    assert report.segments == {key: len(who) for key, (_, who) in SEGMENTS.items()}


def test_classes_by_custom_criteria(db: Store) -> None:
    ids = _chain(db)
    custom = Settings(
        class_key="visits_365d >= 4 and spend_365d >= 50",
        class_regular="visits_365d >= 2",
        action_end="return_rate_365d > 0.25 or margin_rate_365d < 0.35",
    )
    report = run(db, AS_OF, custom)
    rows = {who: feature_rows(db)[ids[who]] for who in EXPECTED}
    assert {w: (r["relationship_class"], r["relationship_action"]) for w, r in rows.items()} == {
        "aino": ("key", "change or end"),  # 4 visits, 54.00; returns 0.27 > 0.25
        "bertta": ("regular", "change or end"),  # margin rate 0.3 < 0.35
        "carita": (None, None),  # no visit in the year
        "daavid": ("regular", "develop"),  # margin rate 0.4
    }
    assert report.classes == {"key": 1, "regular": 2}


def _every(s: Any, who: str, ages: list[int], store: str = "kamppi") -> None:
    """One 10.00 visit of `who` at 12:00 local on each of the days `ages` before AS_OF."""
    for age in ages:
        day = AS_OF - timedelta(days=age)
        buy(s, f"{who}-{age}", utc(f"{day} 09:00"), store, f"{who}@example.fi", ("MILK", 10))


def test_stages_across_two_analyses(db: Store) -> None:
    later = AS_OF + timedelta(days=20)
    with db.transaction() as s:
        make_catalogue(s)
        ids = {
            who: make_customer(s, emails=[f"{who}@example.fi"]).id
            for who in ("steady", "fading", "returning", "short")
        }
        # every 30 days for half a year: the 90 days and the 90 before both 30.00: trend 0
        _every(s, "steady", [0, 30, 60, 90, 120, 150, 180])
        # every 30 days, the last 70 days ago: overdue 2x (60) but not 4x (120)
        _every(s, "fading", [70, 100, 130])
        # every 30 days until 200 days ago: overdue 4x; back 10 days after AS_OF
        _every(s, "returning", [200, 230, -10])
        # one visit: its rhythm is the population's median of 30, 30 and 30 days
        _every(s, "short", [95])
    run(db, AS_OF)
    first = {who: feature_rows(db)[i]["lifecycle_stage"] for who, i in ids.items()}
    assert first == {
        "steady": "active",  # recency 0, tenure 180, trend 0
        "fading": "passivating",  # 70 > max(2 x 30, 21) and not > max(4 x 30, 90)
        "returning": "lapsed",  # 200 > max(4 x 30, 90)
        "short": "passivating",  # 95 > 2 x 30 and not > 120 (the median rhythm)
    }
    run(db, later)
    second = {who: feature_rows(db)[i]["lifecycle_stage"] for who, i in ids.items()}
    assert second == {
        "steady": "active",  # recency 20, trend (30 - 30) / 30 = 0
        "fading": "passivating",  # recency 90 > 60 and not > 120
        "returning": "won back",  # lapsed last time; recency 10, rhythm (220 - 10) / 2 = 105
        "short": "passivating",  # 115 > 2 x 30 and not > 120
    }


def test_quiet_hours_of_a_tiny_store(db: Store) -> None:
    """Four Mondays (ages 1, 8, 15, 22: weeks 0-3): 10:00 has four visits a week, 11:00 one,
    12:00 one in one week only (open in fewer than half the weeks); the web shop has none."""
    with db.transaction() as s:
        make_catalogue(s)
        ids = {who: make_customer(s, emails=[f"{who}@example.fi"]).id for who in ("q", "r")}
        n = 0
        for age in (1, 8, 15, 22):
            day = AS_OF - timedelta(days=age)
            for k in range(4):
                # 10:xx local is 07:xx UTC; Q comes once a week at 10, the rest are anonymous
                who = "q@example.fi" if k == 0 else None
                buy(s, f"Q{n}", utc(f"{day} 07:{10 * k:02d}"), "kamppi", who, ("MILK", 1))
                n += 1
            # 11:00: R, who comes nowhere else (1.00 each)
            buy(s, f"Q{n}", utc(f"{day} 08:00"), "kamppi", "r@example.fi", ("MILK", 1))
            n += 1
        buy(s, "Q-late", utc(f"{AS_OF - timedelta(days=8)} 09:00"), "kamppi", None, ("LAMP", 1))
        buy(
            s,
            "Q-web",
            utc(f"{AS_OF - timedelta(days=1)} 07:00"),
            "web",
            "q@example.fi",
            ("MILK", 1),
        )
    report = run(db, AS_OF)
    with db.transaction() as s:
        slots = {
            (x.weekday, x.hour): (x.visits_per_week, x.sales_per_week, x.quiet, x.as_of)
            for x in s.scalars(select(QuietSlot))
        }
        outlets = {x.outlet_id for x in s.scalars(select(QuietSlot))}
        audience = [
            (x.customer_id, x.rank, x.score, x.quiet_visits, x.as_of)
            for x in s.scalars(select(QuietAudience).order_by(QuietAudience.rank))
        ]
    assert len(outlets) == 1  # kamppi only: the web shop has no hours
    # 4 trading weeks; the mean open hour is (4 + 1) / 2 = 2.5 visits; quiet under 1.25
    assert slots == {
        (0, 10): (4.0, 4.0, False, AS_OF),  # 16 visits x 1.00 / 4 weeks
        (0, 11): (1.0, 1.0, True, AS_OF),
        (0, 12): (0.25, 7.5, False, AS_OF),  # 30.00 / 4 weeks; open in 1 week of 4
    }
    assert report.quiet_slots == 1
    # The store's base is the quiet share of its customers' visits: R's 4 of Q's 4 + R's 4.
    # R: (4 quiet + 4 x base) / (4 visits + 4); Q has no quiet visit and is not listed.
    base = 4 / 8
    [(customer, rank, score, quiet_visits, as_of)] = audience
    assert (customer, rank, quiet_visits, as_of) == (ids["r"], 1, 4, AS_OF)
    assert score == pytest.approx((4 + 4 * base) / 8, rel=1e-12)
