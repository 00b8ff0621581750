"""Tiers: qualification over a rolling period, upgrade at once, downgrade only after the
kept-until date, the member's sentence and the definitions' checks; on both databases."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient

from oppiva.api.app import create_app
from oppiva.db import Store, utcnow
from oppiva.errors import InvalidInput
from oppiva.loyalty import ledger, tiers
from oppiva.purchases import service as purchases
from tests.cli.conftest import Cli, error_line
from tests.conftest import make_key
from tests.factories import make_customer
from tests.purchases.conftest import _catalogue, receipt

POINTS = """
- {key: silver, name: Silver, threshold: 100, measure: points_earned, grace_months: 1}
- {key: gold, name: Gold, threshold: 200, measure: points_earned, grace_months: 1,
   multiplier: 1.5}
"""
SPEND = '[{"key": "gold", "name": "Gold", "threshold": 20, "measure": "spend"}]'
CARD = "6012000000000001"


def at(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, 12, tzinfo=UTC)


def earn(session, customer: int, points: int, when: datetime) -> None:
    ledger.earn(
        session,
        "plussa",
        customer,
        points,
        source="test",
        external_id=f"{when.isoformat()}:{points}",
        rule="test",
        at=when,
    )


@pytest.fixture
def member(db: Store) -> int:
    with db.transaction() as session:
        ledger.create_programme(session, "plussa", "Plussa")
        tiers.set_tiers(session, "plussa", POINTS)
        customer = make_customer(session, identities=[{"kind": "card", "value": CARD}])
        ledger.join(session, "plussa", customer.id, at=at(2026, 1, 1))
        return customer.id


def test_upgrade_at_once_keep_until_the_date_then_move_down(db, member):
    with db.transaction() as session:
        earn(session, member, 150, at(2026, 1, 10))
        silver = tiers.qualify(session, "plussa", member, at(2026, 1, 10))
        assert (silver.tier, silver.kept_until) == ("silver", date(2027, 2, 28))
        assert silver.message == "50 points more to reach Gold"
        earn(session, member, 60, at(2026, 2, 1))
        gold = tiers.qualify(session, "plussa", member, at(2026, 2, 1))
        assert (gold.tier, gold.since, gold.kept_until) == (
            "gold",
            at(2026, 2, 1),
            date(2027, 3, 31),
        )
        assert gold.message == "Gold kept until 2027-03-31"
        earn(session, member, 120, at(2026, 6, 1))
        # The earnings of January and February have left the window: Gold is kept until its date.
        kept = tiers.qualify(session, "plussa", member, at(2027, 3, 15))
        assert (kept.tier, kept.since, kept.measure) == ("gold", at(2026, 2, 1), Decimal(120))
        assert kept.message == "80 points more by 2027-03-31 keeps Gold"
        down = tiers.qualify(session, "plussa", member, at(2027, 4, 1))
        assert (down.tier, down.since, down.kept_until) == (
            "silver",
            at(2027, 4, 1),
            date(2028, 5, 31),
        )
        assert down.message == "80 points more to reach Gold"
        gone = tiers.qualify(session, "plussa", member, at(2028, 6, 1))
        assert (gone.tier, gone.message) == (None, "100 points more to reach Silver")
        changes = [(c.from_tier, c.to_tier) for c in tiers.history(session, "plussa", member)]
    assert changes == [(None, "silver"), ("silver", "gold"), ("gold", "silver"), ("silver", None)]


def test_spending_points_does_not_lower_the_tier(db, member):
    with db.transaction() as session:
        earn(session, member, 250, at(2026, 1, 10))
        assert tiers.qualify(session, "plussa", member, at(2026, 1, 10)).tier == "gold"
        ledger.spend(
            session, "plussa", member, 240, source="test", external_id="s", at=at(2026, 2, 1)
        )
        after = tiers.qualify(session, "plussa", member, at(2026, 2, 1))
    assert (after.tier, after.measure) == ("gold", Decimal(250))


def test_qualification_by_spend_counts_the_members_receipts(db, member):
    with db.transaction() as session:
        _catalogue(session)
        tiers.set_tiers(session, "plussa", SPEND)
        purchases.record_receipt(
            session,
            receipt(purchased_at=at(2026, 5, 4), identifiers=[{"kind": "card", "value": CARD}]),
        )
        short = tiers.qualify(session, "plussa", member, at(2026, 5, 5))
        assert (short.tier, short.measure, short.needed) == (
            None,
            Decimal("5.67"),
            Decimal("14.33"),
        )
        assert short.message == "14.33 EUR more to reach Gold"


@pytest.mark.parametrize(
    ("definitions", "place"),
    [
        ("- {key: a, name: A, threshold: 10, measure: height}", r"tiers\[0\]\.measure"),
        (
            "- {key: a, name: A, threshold: 10, measure: visits}\n"
            "- {key: b, name: B, threshold: 10, measure: visits}",
            r"tiers\[1\]\.threshold",
        ),
        (
            "- {key: a, name: A, threshold: 1, measure: visits}\n"
            "- {key: b, name: A, threshold: 2, measure: visits}",
            r"tiers\[1\]\.name",
        ),
        ("- {key: a, name: A, threshold: 1, measure: visits, multiplier: 0.5}", r"multiplier"),
        ("{key: a}", r"^tiers: must be a list"),
    ],
)
def test_bad_definitions_are_refused_naming_the_place(db, member, definitions, place):
    with db.transaction() as session, pytest.raises(InvalidInput, match=place):
        tiers.set_tiers(session, "plussa", definitions)


def test_cli_sets_and_shows_tiers_and_balance_and_api_carry_the_tier(db, member, tmp_path):
    cli = Cli(db.url)
    definitions = tmp_path / "tiers.yaml"
    definitions.write_text(POINTS)
    shown = cli.json("loyalty", "tiers", "plussa", "--set", str(definitions))
    assert [(t["key"], t["threshold"], t["multiplier"]) for t in shown] == [
        ("silver", "100", "1"),
        ("gold", "200", "1.5"),
    ]
    assert "Gold" in cli.ok("loyalty", "tiers", "plussa").stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("- {key: a, name: A, threshold: -1, measure: visits}\n")
    assert "tiers[0].threshold" in error_line(cli("loyalty", "tiers", "plussa", "--set", str(bad)))
    with db.transaction() as session:
        earn(session, member, 120, utcnow())
    balance = cli.json("loyalty", "balance", "plussa", str(member))
    assert (balance["tier"], balance["tier_message"]) == ("silver", "80 points more to reach Gold")
    key = make_key(db, ["loyalty:read"])
    with TestClient(create_app(db), headers={"Authorization": f"Bearer {key}"}) as api:
        out = api.get(f"/v1/loyalty/programmes/plussa/members/{member}/balance").json()
    assert (out["tier"], out["next_tier"], out["next_tier_needed"]) == ("silver", "gold", "80")
