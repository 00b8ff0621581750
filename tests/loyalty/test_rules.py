"""The earning rules: reading them as data and evaluating baskets and events without a store."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oppiva.errors import InvalidInput
from oppiva.loyalty import rules as rules_module
from oppiva.loyalty.rules import (
    Basket,
    BasketLine,
    Earning,
    MemberContext,
    RuleSet,
    dump_rule_set,
    evaluate,
    evaluate_behaviour,
    load_rule_set,
    period_start,
)

# The module's documented example, and more rules of each kind after it.
DOCUMENTED = (
    rules_module.__doc__.split("```yaml\n")[1].split("```")[0] if rules_module.__doc__ else ""
)
EXAMPLE = (
    DOCUMENTED
    + """\
  - name: organic
    kind: group_multiplier
    multiplier: 1.5
    applies_to: {subgroups: [Organic]}
  - name: gold-bonus
    kind: campaign
    starts: 2026-05-01
    ends: 2026-05-31
    bonus_points: 100
    tiers: [gold]
  - name: welcome
    kind: first_purchase
    bonus_points: 50
  - name: feedback
    kind: behaviour
    event: feedback_given
    points: 10
    cap: 30
    period: month
"""
)

MAY = date(2026, 5, 15)


def line(
    cents: int,
    *,
    sku: str = "SKU1",
    department: str = "Food",
    group: str = "Dairy",
    subgroup: str | None = None,
) -> BasketLine:
    return BasketLine(sku, department, group, subgroup, Decimal(1), cents)


def basket(*lines: BasketLine, total: int | None = None) -> Basket:
    cents = sum(item.net_cents for item in lines) if total is None else total
    return Basket(tuple(lines), datetime(2026, 5, 15, 12, tzinfo=UTC), cents)


def rules(*items: dict[str, Any]) -> RuleSet:
    return load_rule_set({"id": "test", "rules": list(items)})


def per_euro(points: Any = 1, **extra: Any) -> dict[str, Any]:
    return {"name": "base", "kind": "per_euro", "points_per_euro": points, **extra}


def by_rule(earning: Earning) -> dict[str, int]:
    return {part.rule: part.points for part in earning.parts}


# --- each kind ---------------------------------------------------------------------------


def test_per_euro_floors_by_default_and_explains() -> None:
    earning = evaluate(rules(per_euro(2)), basket(line(2155), line(2155)), MemberContext(MAY))
    assert earning.total == 86
    assert earning.parts[0].explanation == "2 points per euro on 43.10 EUR"
    assert earning.parts[0].kind == "per_euro"
    odd = basket(line(199))
    assert evaluate(rules(per_euro()), odd, MemberContext(MAY)).total == 1


@pytest.mark.parametrize(("rounding", "cents", "points"), [
    ("floor", 250, 2), ("half_up", 250, 3), ("half_up", 249, 2), ("ceil", 201, 3),
])  # fmt: skip
def test_per_euro_rounding_modes(rounding: str, cents: int, points: int) -> None:
    rule_set = rules(per_euro(rounding=rounding))
    assert evaluate(rule_set, basket(line(cents)), MemberContext(MAY)).total == points


def test_exclusions_by_sku_department_group_and_subgroup() -> None:
    exclude = {"skus": ["GIFT"], "departments": ["Tobacco"], "groups": ["Deposits"]}
    rule_set = rules(per_euro(1, exclude={**exclude, "subgroups": ["Stamps"]}))
    lines = [
        line(1000),
        line(1000, sku="GIFT"),
        line(1000, department="Tobacco"),
        line(1000, group="Deposits"),
        line(1000, subgroup="Stamps"),
    ]
    earning = evaluate(rule_set, basket(*lines), MemberContext(MAY))
    assert earning.total == 10
    assert earning.parts[0].explanation == "1 points per euro on 10.00 EUR"


def test_returns_earn_nothing_here() -> None:
    earning = evaluate(rules(per_euro()), basket(line(1000), line(-800)), MemberContext(MAY))
    assert earning.total == 10


def test_group_multiplier_applies_to_base_points_of_its_lines() -> None:
    multiplier = {"name": "fruit", "kind": "group_multiplier", "multiplier": 3}
    rule_set = rules(per_euro(2), {**multiplier, "applies_to": {"groups": ["Fruit"]}})
    earning = evaluate(rule_set, basket(line(1000, group="Fruit"), line(500)), MemberContext(MAY))
    assert by_rule(earning) == {"base": 30, "fruit": 40}
    assert earning.parts[1].explanation == "triple points on Fruit"


def test_multipliers_add_up_and_never_multiply_each_other() -> None:
    fruit = {"kind": "group_multiplier", "multiplier": 2, "applies_to": {"groups": ["Fruit"]}}
    campaign = {"kind": "campaign", "starts": "2026-05-01", "ends": "2026-05-31", "multiplier": 2}
    rule_set = rules(per_euro(), {"name": "a", **fruit}, {"name": "b", **campaign})
    earning = evaluate(rule_set, basket(line(1000, group="Fruit")), MemberContext(MAY))
    assert by_rule(earning) == {"base": 10, "a": 10, "b": 10}
    assert earning.parts[2].explanation == "double points on the whole basket, 1–31 May"


def test_a_multiplier_gives_nothing_on_excluded_lines() -> None:
    exclude = {"groups": ["Fruit"]}
    fruit = {"kind": "group_multiplier", "multiplier": 5, "applies_to": {"groups": ["Fruit"]}}
    rule_set = rules(per_euro(exclude=exclude), {"name": "fruit", **fruit})
    earning = evaluate(rule_set, basket(line(1000, group="Fruit")), MemberContext(MAY))
    assert earning.total == 0
    assert earning.parts == ()


def test_order_of_the_list_orders_the_parts_only() -> None:
    fruit = {"name": "fruit", "kind": "group_multiplier", "multiplier": 2}
    fruit["applies_to"] = {"groups": ["Fruit"]}
    first, second = rules(per_euro(), fruit), rules(fruit, per_euro())
    items = basket(line(1000, group="Fruit"))
    assert evaluate(first, items, MemberContext(MAY)).total == 20
    assert [p.rule for p in evaluate(second, items, MemberContext(MAY)).parts] == ["fruit", "base"]


CAMPAIGN: dict[str, Any] = {
    "name": "fresh",
    "kind": "campaign",
    "starts": "2026-05-01",
    "ends": "2026-05-31",
    "multiplier": 2,
    "applies_to": {"groups": ["Fruit & vegetables"]},
}


@pytest.mark.parametrize(("today", "applies"), [
    (date(2026, 4, 30), False), (date(2026, 5, 1), True),
    (date(2026, 5, 31), True), (date(2026, 6, 1), False),
])  # fmt: skip
def test_campaign_dates_are_inclusive(today: date, applies: bool) -> None:
    items = basket(line(1000, group="Fruit & vegetables"))
    earning = evaluate(rules(per_euro(), CAMPAIGN), items, MemberContext(today))
    assert by_rule(earning).get("fresh", 0) == (10 if applies else 0)
    if applies:
        assert earning.parts[1].explanation == ("double points on Fruit & vegetables, 1–31 May")


def test_campaign_uses_the_business_date_not_the_utc_date() -> None:
    # 22:30 UTC on 31 May is already 1 June in Helsinki: the campaign is over there.
    moment = datetime(2026, 5, 31, 22, 30, tzinfo=UTC)
    business_day = moment.astimezone(ZoneInfo("Europe/Helsinki")).date()
    items = Basket((line(1000, group="Fruit & vegetables"),), moment, 1000)
    earning = evaluate(rules(per_euro(), CAMPAIGN), items, MemberContext(business_day))
    assert by_rule(earning) == {"base": 10}


def test_campaign_bonus_points_for_a_tier_or_segment_on_given_lines() -> None:
    bonus = {**CAMPAIGN, "multiplier": None, "bonus_points": 25, "tiers": ["gold"]}
    bonus["segments"] = ["families", "students"]
    rule_set = rules(per_euro(), bonus)
    fruit = basket(line(1000, group="Fruit & vegetables"))
    member = MemberContext(MAY, tier="gold", segments=frozenset({"students"}))
    earning = evaluate(rule_set, fruit, member)
    assert by_rule(earning) == {"base": 10, "fresh": 25}
    assert earning.parts[1].explanation == "25 bonus points on Fruit & vegetables, 1–31 May"
    silver = MemberContext(MAY, tier="silver", segments=frozenset({"students"}))
    assert evaluate(rule_set, fruit, silver).total == 10
    outsider = MemberContext(MAY, tier="gold")
    assert evaluate(rule_set, fruit, outsider).total == 10
    assert evaluate(rule_set, basket(line(1000)), member).total == 10


def test_campaigns_stack() -> None:
    second = {**CAMPAIGN, "name": "fresh-again", "multiplier": 3}
    bonus = {**CAMPAIGN, "name": "bonus", "multiplier": None, "bonus_points": 7}
    rule_set = rules(per_euro(), CAMPAIGN, second, bonus)
    earning = evaluate(rule_set, basket(line(1000, group="Fruit & vegetables")), MemberContext(MAY))
    assert by_rule(earning) == {"base": 10, "fresh": 10, "fresh-again": 20, "bonus": 7}
    assert earning.total == 47


@pytest.mark.parametrize(("withhold", "below", "at"), [("all", 0, 22), ("bonus", 4, 22)])
def test_minimum_basket(withhold: str, below: int, at: int) -> None:
    minimum = {"name": "min", "kind": "minimum_basket", "amount": "5.00", "withhold": withhold}
    first = {"name": "welcome", "kind": "first_purchase", "bonus_points": 10}
    rule_set = rules(per_euro(), CAMPAIGN, minimum, first)
    context = MemberContext(MAY, first_purchase=True)
    small = evaluate(rule_set, basket(line(499, group="Fruit & vegetables")), context)
    assert small.total == below
    assert small.notes == (
        f"min: {'no points' if withhold == 'all' else 'no bonus points'} below 5.00 EUR",
    )
    exact = evaluate(rule_set, basket(line(600, group="Fruit & vegetables")), context)
    assert exact.total == 6 + 6 + 10 == at
    assert exact.notes == ()


def test_first_purchase_bonus_only_on_the_first() -> None:
    rule_set = rules(per_euro(), {"name": "welcome", "kind": "first_purchase", "bonus_points": 50})
    items = basket(line(1000))
    first = evaluate(rule_set, items, MemberContext(MAY, first_purchase=True))
    assert by_rule(first) == {"base": 10, "welcome": 50}
    assert first.parts[1].explanation == "50 bonus points on the first purchase"
    assert evaluate(rule_set, items, MemberContext(MAY)).total == 10


def test_behaviour_points_with_a_cap_per_period() -> None:
    rule_set = load_rule_set(EXAMPLE)
    earning = evaluate_behaviour(rule_set, "feedback_given", MemberContext(MAY))
    assert by_rule(earning) == {"feedback": 10}
    assert earning.parts[0].explanation == "10 points for feedback given"
    nearly = MemberContext(MAY, earned_in_period={"feedback": 25})
    assert evaluate_behaviour(rule_set, "feedback_given", nearly).total == 5
    full = MemberContext(MAY, earned_in_period={"feedback": 30})
    capped = evaluate_behaviour(rule_set, "feedback_given", full)
    assert capped.total == 0
    assert capped.notes == ("feedback: at most 30 points a month",)
    assert evaluate_behaviour(rule_set, "referral", MemberContext(MAY)).total == 0
    # Behaviour rules give nothing for a basket.
    assert "feedback" not in by_rule(evaluate(rule_set, basket(line(1000)), MemberContext(MAY)))
    with pytest.raises(InvalidInput) as refused:
        evaluate_behaviour(rule_set, "dancing", MemberContext(MAY))
    assert refused.value.field == "event"


@pytest.mark.parametrize(("period", "start"), [
    ("day", date(2026, 5, 15)), ("week", date(2026, 5, 11)),
    ("month", date(2026, 5, 1)), ("year", date(2026, 1, 1)),
])  # fmt: skip
def test_period_start(period: Any, start: date) -> None:
    assert period_start(period, MAY) == start


def test_the_example_earns_as_documented() -> None:
    rule_set = load_rule_set(EXAMPLE)
    items = basket(
        line(1000, group="Fruit & vegetables", subgroup="Organic"),
        line(2000, department="Tobacco"),
        line(500),
    )
    member = MemberContext(MAY, tier="gold", first_purchase=True)
    earning = evaluate(rule_set, items, member)
    assert by_rule(earning) == {
        "base": 30,
        "fresh-double": 20,
        "organic": 10,
        "gold-bonus": 100,
        "welcome": 50,
    }
    assert earning.total == 210


# --- reading and writing -----------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_example_file_round_trip(tmp_path: Path, fmt: Any) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(EXAMPLE, encoding="utf-8")
    loaded = load_rule_set(path.read_text(encoding="utf-8"))
    assert loaded.id == "everyday"
    assert loaded.version == 3
    assert load_rule_set(DOCUMENTED).rules == loaded.rules[:3]
    assert [rule.kind for rule in loaded.rules] == [
        "per_euro",
        "campaign",
        "minimum_basket",
        "group_multiplier",
        "campaign",
        "first_purchase",
        "behaviour",
    ]
    text = dump_rule_set(loaded, fmt)
    again = load_rule_set(text)
    assert again == loaded
    assert dump_rule_set(again, fmt) == text


@pytest.mark.parametrize(("change", "place", "reason"), [
    ({"kind": "points_for_smiles"}, "rules[1].kind", "unknown kind 'points_for_smiles'"),
    ({"kind": None}, "rules[1].kind", "required"),
    ({"multiplier": -2}, "rules[1].multiplier", "must be greater than or equal to 1"),
    ({"multiplier": "lots"}, "rules[1].multiplier", "must be a valid decimal"),
    ({"colour": "red"}, "rules[1].colour", "unknown field"),
    ({"applies_to": {}}, "rules[1].applies_to", "name at least one"),
    ({"applies_to": {"group": ["x"]}}, "rules[1].applies_to.group", "unknown field"),
    ({"name": "base"}, "rules[1].name", "'base' is already the name of rules[0]"),
    ({"name": None}, "rules[1].name", "required"),
])  # fmt: skip
def test_bad_rules_are_refused_by_place(change: dict[str, Any], place: str, reason: str) -> None:
    fruit: dict[str, Any] = {"name": "fruit", "kind": "group_multiplier", "multiplier": 2}
    fruit["applies_to"] = {"groups": ["Fruit"]}
    bad = {key: value for key, value in {**fruit, **change}.items() if value is not None}
    with pytest.raises(InvalidInput) as refused:
        rules(per_euro(), bad)
    assert refused.value.field == place
    assert refused.value.reason.startswith(reason)
    assert str(refused.value).startswith(f"{place}: {reason}")


@pytest.mark.parametrize(("change", "place", "reason"), [
    ({"ends": "2026-04-30"}, "rules[2].ends", "must not be before starts (2026-05-01)"),
    ({"bonus_points": 5}, "rules[2].multiplier", "give either multiplier or bonus_points"),
    ({"multiplier": None}, "rules[2].multiplier", "give either multiplier or bonus_points"),
    ({"starts": "1 May"}, "rules[2].starts", "must be a valid date"),
])  # fmt: skip
def test_bad_campaigns_are_refused_by_place(
    change: dict[str, Any], place: str, reason: str
) -> None:
    campaign = {key: value for key, value in {**CAMPAIGN, **change}.items() if value is not None}
    first = {"name": "welcome", "kind": "first_purchase", "bonus_points": 1}
    with pytest.raises(InvalidInput) as refused:
        rules(per_euro(), first, campaign)
    assert (refused.value.field, refused.value.reason[: len(reason)]) == (place, reason)


def test_bad_text_is_refused() -> None:
    with pytest.raises(InvalidInput) as refused:
        load_rule_set("id: x\nrules: [\n")
    assert refused.value.field == "rule set"
    assert "line" in refused.value.reason
    with pytest.raises(InvalidInput):
        load_rule_set("- just a list")
    with pytest.raises(InvalidInput) as missing:
        load_rule_set('{"id": "x"}')
    assert missing.value.field == "rules"


# --- properties --------------------------------------------------------------------------

GROUPS = ["Dairy", "Fruit", "Tobacco"]
lines_strategy = st.lists(
    st.builds(
        lambda cents, group: line(cents, group=group, sku=f"S{cents % 3}"),
        st.integers(min_value=-50_000, max_value=500_000),
        st.sampled_from(GROUPS),
    ),
    max_size=12,
)
per_euro_strategy = st.builds(
    lambda i, points, rounding, excluded: per_euro(
        points, name=f"base{i}", rounding=rounding, exclude={"groups": excluded}
    ),
    st.integers(0, 1000),
    st.decimals(min_value="0.01", max_value="20", places=2),
    st.sampled_from(["floor", "half_up", "ceil"]),
    st.lists(st.sampled_from(GROUPS), max_size=2),
)


def _unique(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return list({item["name"]: item for item in items}.values())


@given(
    st.lists(per_euro_strategy, min_size=1, max_size=3).map(_unique),
    lines_strategy,
    st.integers(0, 3),
    st.booleans(),
    st.dates(date(2026, 4, 25), date(2026, 6, 5)),
)
def test_total_is_the_sum_of_parts_and_never_negative(
    bases: list[dict[str, Any]], items: list[BasketLine], extra: int, first: bool, today: date
) -> None:
    others: list[dict[str, Any]] = [
        {"name": "fruit", "kind": "group_multiplier", "multiplier": 1 + extra},
        {**CAMPAIGN, "applies_to": {"groups": ["Fruit"]}},
        {**CAMPAIGN, "name": "gift", "multiplier": None, "bonus_points": 5 + extra},
        {"name": "welcome", "kind": "first_purchase", "bonus_points": 3},
        {"name": "min", "kind": "minimum_basket", "amount": 2, "withhold": "bonus"},
    ]
    others[0]["applies_to"] = {"groups": ["Fruit"]}
    rule_set = rules(*bases, *others)
    earning = evaluate(rule_set, basket(*items), MemberContext(today, first_purchase=first))
    assert earning.total == sum(part.points for part in earning.parts)
    assert earning.total >= 0
    assert all(part.points > 0 for part in earning.parts)
    assert evaluate(rule_set, basket(*items), MemberContext(today, first_purchase=first)) == earning


@given(
    st.lists(per_euro_strategy, min_size=1, max_size=3).map(_unique),
    lines_strategy,
    st.data(),
)
def test_per_euro_points_grow_with_the_basket(
    bases: list[dict[str, Any]], items: list[BasketLine], data: st.DataObject
) -> None:
    rule_set = rules(*bases)
    before = evaluate(rule_set, basket(*items), MemberContext(MAY)).total
    more = [
        BasketLine(
            item.sku,
            item.department,
            item.group,
            item.subgroup,
            item.quantity,
            item.net_cents + data.draw(st.integers(0, 100_000)),
        )
        for item in items
    ]
    more.append(line(data.draw(st.integers(0, 100_000)), group=data.draw(st.sampled_from(GROUPS))))
    assert evaluate(rule_set, basket(*more), MemberContext(MAY)).total >= before
