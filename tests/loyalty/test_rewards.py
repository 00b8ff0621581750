"""Rewards: the catalogue's checks, what a member may redeem and why not, redemption through the
ledger, voucher codes, use at the till and cancellation; the CLI and the API; on both
databases."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from oppiva.api.app import create_app
from oppiva.customers import service as customers
from oppiva.db import Store
from oppiva.errors import Conflict, InvalidInput, NotFound
from oppiva.loyalty import ledger, rewards, tiers, voucher_codes, vouchers
from oppiva.loyalty.models import Membership, Voucher, VoucherStatus
from oppiva.privacy.service import export_person
from tests.cli.conftest import Cli, error_line
from tests.conftest import empty_tables, make_key
from tests.factories import make_customer
from tests.loyalty.conftest import WHEN

AT = WHEN + timedelta(days=1)
CATALOGUE = """
- {key: coffee, name: Coffee and a bun, kind: goods, cost_points: 300, stock: 2,
   limit_per_member: 1, limit_period_days: 30}
- key: evening
  name: An evening out
  kind: experience
  cost_points: 500
  voucher_days: 10
  options: [{key: cinema, name: Cinema for two}, {key: spa, name: Spa entry}]
- {key: lounge, name: Lounge, kind: service, cost_points: 100, tiers: [gold]}
- {key: flight, name: Flight, kind: partner, partner: Finnair, cost_points: 100,
   available_from: "2026-06-01T00:00:00+03:00"}
"""
TIERS = "- {key: gold, name: Gold, threshold: 1000, measure: points_earned}\n"


def give(session, member: int, points: int, external_id: str = "welcome") -> None:
    ledger.adjust(
        session,
        "plussa",
        member,
        points,
        reason="welcome",
        staff="test",
        source="test",
        external_id=external_id,
        at=WHEN,
    )


@pytest.fixture
def shop(db: Store, member: int) -> int:
    """The member with 1,000 points and the catalogue above."""
    with db.transaction() as session:
        tiers.set_tiers(session, "plussa", TIERS)
        rewards.set_rewards(session, "plussa", CATALOGUE, WHEN)
        give(session, member, 1000)
    return member


def redeem(session, member: int, reward: str, n: str, **options) -> object:
    return rewards.redeem(
        session, "plussa", member, reward, source="app", external_id=n, at=AT, **options
    )


# --- the catalogue ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "place", "reason"),
    [
        ("{key: x}", "rewards", "list of rewards"),
        (
            "- {key: x, name: X, kind: goods, cost_points: 0}",
            "rewards[4].cost_points",
            "equal to 1",
        ),
        ("- {key: x, name: X, kind: gift, cost_points: 5}", "rewards[4].kind", "goods"),
        ("- {key: X!, name: X, kind: goods, cost_points: 5}", "rewards[4].key", "pattern"),
        ("- {key: x, name: X, kind: partner, cost_points: 5}", "rewards[4].partner", "required"),
        (
            "- {key: x, name: X, kind: goods, partner: Y, cost_points: 5}",
            "rewards[4].partner",
            "only a partner product",
        ),
        (
            "- {key: x, name: X, kind: goods, cost_points: 5, limit_period_days: 7}",
            "rewards[4].limit_period_days",
            "needs limit_per_member",
        ),
        (
            "- {key: x, name: X, kind: goods, cost_points: 5, tiers: [platinum]}",
            "rewards[4].tiers[0]",
            "no tier 'platinum'",
        ),
        (
            "- {key: x, name: X, kind: goods, cost_points: 5, options: [{key: a, name: A}]}",
            "rewards[4].options",
            "at least 2",
        ),
        (
            "- {key: x, name: X, kind: goods, cost_points: 5,"
            " options: [{key: a, name: A}, {key: a, name: B}]}",
            "rewards[4].options[1]",
            "named twice",
        ),
        (
            "- {key: x, name: X, kind: goods, cost_points: 5,"
            " available_from: 2026-06-01T00:00:00Z, available_until: 2026-05-01T00:00:00Z}",
            "rewards[4].available_until",
            "after available_from",
        ),
        (
            "- {key: x, name: X, kind: goods, cost_points: 5, available_from: 2026-06-01}",
            "rewards[4].available_from",
            "",
        ),
        (
            "- {key: x, name: X, kind: goods, cost_points: 5}\n"
            "- {key: x, name: Y, kind: goods, cost_points: 5}",
            "rewards[5].key",
            "used twice",
        ),
        ("- {key: x, name: X, kind: goods, cost_points: 5, colour: red}", "rewards[4].colour", ""),
        ("[", "rewards", "YAML"),
    ],
)
def test_bad_definitions_are_refused_naming_the_place_and_nothing_is_kept(
    db, shop, text, place, reason
):
    # a good reward before the bad one: it is not kept either
    source = CATALOGUE.replace("Coffee", "Tea") + text if text.startswith("-") else text
    with db.transaction() as session, pytest.raises(InvalidInput) as caught:
        rewards.set_rewards(session, "plussa", source)
    assert caught.value.field == place
    assert reason in caught.value.reason
    with db.transaction() as session:
        assert rewards.get_reward(session, "plussa", "coffee").name == "Coffee and a bun"


def test_setting_again_updates_by_key_and_keeps_the_units_already_redeemed(db, shop):
    with db.transaction() as session:
        redeem(session, shop, "coffee", "1")
        rewards.set_rewards(session, "plussa", CATALOGUE, WHEN)
        coffee = rewards.get_reward(session, "plussa", "coffee")
        assert (coffee.stock, coffee.stock_left) == (2, 1)
        changed = CATALOGUE.replace("stock: 2", "stock: 5")
        rewards.set_rewards(session, "plussa", changed, WHEN)
        assert rewards.get_reward(session, "plussa", "coffee").stock_left == 4
    with db.transaction() as session, pytest.raises(InvalidInput) as caught:
        rewards.set_rewards(session, "plussa", CATALOGUE.replace("stock: 2", "stock: 0"))
    assert caught.value.field == "rewards[0].stock"
    assert "1 units" in caught.value.reason


def test_a_retired_reward_leaves_the_catalogue_and_cannot_be_redeemed(db, shop):
    with db.transaction() as session:
        voucher = redeem(session, shop, "evening", "1", option="spa")
        rewards.retire(session, "plussa", "evening", AT)
        assert "evening" not in [r.key for r in rewards.catalogue(session, "plussa")]
        assert "evening" in [
            r.key for r in rewards.catalogue(session, "plussa", include_retired=True)
        ]
        assert vouchers.check(session, voucher.code, AT).verdict == "valid"
    with db.transaction() as session, pytest.raises(InvalidInput, match="retired"):
        redeem(session, shop, "evening", "2", option="spa")
    with db.transaction() as session:
        rewards.set_rewards(session, "plussa", CATALOGUE, WHEN)
        assert rewards.get_reward(session, "plussa", "evening").retired_at is None


# --- what a member may redeem -----------------------------------------------------------


def test_a_member_sees_what_they_may_redeem_and_why_not_otherwise(db, shop):
    with db.transaction() as session:
        seen = {o.reward.key: o for o in rewards.offers(session, "plussa", shop, AT)}
    assert set(seen) == {"coffee", "evening", "lounge"}  # flight: not yet in its window
    assert seen["coffee"].redeemable and seen["evening"].redeemable
    assert not seen["lounge"].redeemable
    assert seen["lounge"].reasons == ["only for Gold"]
    with db.transaction() as session:
        session.query(Membership).filter_by(customer_id=shop).update({"tier": "gold"})
        redeem(session, shop, "coffee", "1")
        redeem(session, shop, "evening", "2", option="cinema")
        seen = {o.reward.key: o for o in rewards.offers(session, "plussa", shop, AT)}
        assert seen["lounge"].redeemable
        assert seen["coffee"].reasons == [
            "limit reached: 1 in 30 days; again from " + (AT + timedelta(days=30)).isoformat(),
            "needs 300 points, 200 available (100 more)",
        ]
        assert seen["coffee"].points_needed == 100
        only = rewards.offers(session, "plussa", shop, AT, redeemable_only=True)
        assert [o.reward.key for o in only] == ["lounge"]
        later = {o.reward.key for o in rewards.offers(session, "plussa", shop, AT.replace(month=7))}
        assert "flight" in later


def test_the_limit_is_rolling_and_stock_runs_out(db, shop):
    with db.transaction() as session:
        give(session, shop, 1000, "more")
        redeem(session, shop, "coffee", "1")
        with pytest.raises(InvalidInput, match="limit reached"):
            redeem(session, shop, "coffee", "2")
    month_later = AT + timedelta(days=31)
    with db.transaction() as session:
        rewards.redeem(
            session, "plussa", shop, "coffee", source="app", external_id="3", at=month_later
        )
        other = make_customer(session).id
        ledger.join(session, "plussa", other, at=WHEN)
        give(session, other, 500, "other")
    with db.transaction() as session, pytest.raises(InvalidInput) as caught:
        redeem(session, other, "coffee", "4")
    assert caught.value.field == "reward"
    assert "out of stock" in caught.value.reason


# --- redemption -------------------------------------------------------------------------


def test_redeeming_spends_the_points_and_issues_a_voucher_once_per_request(db, shop):
    with db.transaction() as session:
        voucher = redeem(session, shop, "evening", "R1", option="spa")
        again = redeem(session, shop, "evening", "R1", option="spa")
        assert again.id == voucher.id
        assert ledger.balance(session, "plussa", shop, AT).available == 500
        assert voucher.expires_at == AT + timedelta(days=10)
        assert voucher.points == 500
        (entry,) = [e for e in ledger.statement(session, "plussa", shop) if e["kind"] == "spend"]
        assert (entry["points"], entry["reward"], entry["option"]) == (
            -500,
            "An evening out",
            "Spa entry",
        )
        assert entry["voucher"] == voucher_codes.format_code(voucher.code)
    with db.transaction() as session, pytest.raises(Conflict, match="other values"):
        redeem(session, shop, "evening", "R1", option="cinema")


@pytest.mark.parametrize(
    ("reward", "option", "place", "reason"),
    [
        ("evening", None, "option", "choose one of cinema, spa"),
        ("evening", "sauna", "option", "not 'sauna'"),
        ("coffee", "spa", "option", "no options"),
        ("lounge", None, "reward", "only for Gold"),
        ("flight", None, "reward", "not available before"),
    ],
)
def test_a_redemption_refused_spends_nothing(db, shop, reward, option, place, reason):
    with db.transaction() as session, pytest.raises(InvalidInput) as caught:
        redeem(session, shop, reward, "R1", option=option)
    assert (caught.value.field, reason in caught.value.reason) == (place, True)
    with db.transaction() as session:
        assert ledger.balance(session, "plussa", shop, AT).available == 1000
        assert vouchers.vouchers(session, "plussa", shop) == []


def test_not_enough_points_and_unknown_names_are_refused(db, shop):
    with db.transaction() as session:
        give(session, shop, -900, "take")
    with db.transaction() as session, pytest.raises(InvalidInput, match="needs 300 points, 100"):
        redeem(session, shop, "coffee", "R1")
    with db.transaction() as session, pytest.raises(NotFound, match="no reward 'tea'"):
        redeem(session, shop, "tea", "R2")
    with db.transaction() as session, pytest.raises(NotFound, match="'nosuch'"):
        rewards.redeem(session, "nosuch", shop, "coffee", source="a", external_id="b")
    with db.transaction() as session, pytest.raises(InvalidInput) as caught:
        redeem(session, 999_999, "coffee", "R3")
    assert caught.value.field == "customer_id"


def test_a_spend_request_already_recorded_is_not_turned_into_a_redemption(db, shop):
    with db.transaction() as session:
        ledger.spend(session, "plussa", shop, 300, source="app", external_id="R1", at=AT)
    with db.transaction() as session, pytest.raises(Conflict, match="without a reward"):
        redeem(session, shop, "coffee", "R1")


# --- codes ------------------------------------------------------------------------------


@given(st.text(alphabet=voucher_codes.ALPHABET, min_size=15, max_size=15))
def test_every_code_with_its_check_character_reads_back(body):
    code = body + voucher_codes.check_character(body)
    assert voucher_codes.normalise_code(voucher_codes.format_code(code).lower()) == code


@given(
    st.text(alphabet=voucher_codes.ALPHABET, min_size=15, max_size=15),
    st.integers(0, 15),
    st.integers(1, 31),
)
def test_any_one_mistyped_character_is_told_apart(body, place, shift):
    code = body + voucher_codes.check_character(body)
    wrong = voucher_codes.ALPHABET[(voucher_codes.ALPHABET.index(code[place]) + shift) % 32]
    typo = code[:place] + wrong + code[place + 1 :]
    with pytest.raises(InvalidInput, match="mistyped"):
        voucher_codes.normalise_code(typo)


@given(st.text(alphabet=voucher_codes.ALPHABET, min_size=15, max_size=15), st.integers(0, 14))
def test_two_neighbours_swapped_are_told_apart_unless_0_and_z(body, place):
    code = body + voucher_codes.check_character(body)
    a, b = code[place], code[place + 1]
    swapped = code[:place] + b + a + code[place + 2 :]
    if a == b or {a, b} == {"0", "Z"}:
        return
    with pytest.raises(InvalidInput, match="mistyped"):
        voucher_codes.normalise_code(swapped)


def test_new_codes_are_random_and_typeable():
    codes = {voucher_codes.new_code() for _ in range(2000)}
    assert len(codes) == 2000
    code = codes.pop()
    assert voucher_codes.normalise_code(code.replace("0", "o").replace("1", "l")) == code
    for typed, reason in [("ABCD-EFGH-U", "'U'"), ("ABCD", "16 characters, not 4")]:
        with pytest.raises(InvalidInput, match=reason):
            voucher_codes.normalise_code(typed)


# --- at the till ------------------------------------------------------------------------


def test_the_till_checks_uses_once_and_refuses_a_second_receipt(db, shop):
    with db.transaction() as session:
        code = redeem(session, shop, "evening", "R1", option="cinema").code
    shown = voucher_codes.format_code(code)
    with db.transaction() as session:
        result = vouchers.check(session, shown.lower(), AT)
        assert result.verdict == "valid"
        assert result.voucher is not None
        assert (result.voucher.reward_name, result.voucher.option_name) == (
            "An evening out",
            "Cinema for two",
        )
        used = vouchers.use(session, shown, source="till-1", external_id="K1", at=AT)
        again = vouchers.use(session, code, source="till-1", external_id="K1", at=AT)
        assert used.id == again.id
    with db.transaction() as session, pytest.raises(Conflict, match="till-1/K1"):
        vouchers.use(session, code, source="till-2", external_id="K2", at=AT)
    with db.transaction() as session:
        assert vouchers.check(session, code, AT).verdict == "used"
        assert vouchers.vouchers(session, "plussa", shop)[0].used_on == "till-1/K1"
    with db.transaction() as session, pytest.raises(Conflict, match="cannot be cancelled"):
        vouchers.cancel(session, code, reason="r", staff="s", at=AT)


def test_unknown_mistyped_and_expired_codes_are_told_apart(db, shop):
    with db.transaction() as session:
        code = redeem(session, shop, "evening", "R1", option="spa").code
    body = "0" * 15
    unknown = body + voucher_codes.check_character(body)
    typo = ("1" if code[0] != "1" else "2") + code[1:]
    late = AT + timedelta(days=10)
    with db.transaction() as session:
        assert vouchers.check(session, unknown, AT).verdict == "unknown"
        assert vouchers.check(session, typo, AT).verdict == "mistyped"
        assert vouchers.check(session, code, late).verdict == "expired"
        with pytest.raises(NotFound):
            vouchers.use(session, unknown, source="t", external_id="1", at=AT)
        with pytest.raises(InvalidInput, match="mistyped"):
            vouchers.use(session, typo, source="t", external_id="1", at=AT)
    with db.transaction() as session, pytest.raises(Conflict, match="expired"):
        vouchers.use(session, code, source="t", external_id="1", at=late)


def test_cancelling_returns_points_and_stock_in_the_ledger(db, shop):
    with db.transaction() as session:
        code = redeem(session, shop, "coffee", "R1").code
        assert rewards.get_reward(session, "plussa", "coffee").stock_left == 1
    later = AT + timedelta(hours=1)
    with db.transaction() as session:
        vouchers.cancel(session, code, reason="wrong reward", staff="eeva", at=later)
        again = vouchers.cancel(session, code, reason="twice", staff="eeva", at=later)
        assert again.cancel_reason == "wrong reward"
        assert rewards.get_reward(session, "plussa", "coffee").stock_left == 2
        assert ledger.balance(session, "plussa", shop, later).available == 1000
        last = ledger.statement(session, "plussa", shop)[-1]
        assert (last["kind"], last["points"], last["staff"], last["reward"]) == (
            "adjust",
            300,
            "eeva",
            "Coffee and a bun",
        )
        assert vouchers.check(session, code, later).verdict == "cancelled"
        # the cancelled redemption does not count towards the limit
        redeem(session, shop, "coffee", "R2")
    with db.transaction() as session, pytest.raises(Conflict, match="cancelled"):
        vouchers.use(session, code, source="t", external_id="1", at=later)


# --- personal data ----------------------------------------------------------------------


def test_the_export_lists_vouchers_and_a_merge_moves_them(db, shop):
    with db.transaction() as session:
        code = redeem(session, shop, "evening", "R1", option="spa").code
        survivor = make_customer(session).id
    with db.transaction() as session:
        (account,) = next(
            r["loyalty"] for r in export_person(session, shop)["records"] if "loyalty" in r
        )
        (voucher,) = account["vouchers"]
        assert (voucher["reward_name"], voucher["option"], voucher["status"]) == (
            "An evening out",
            "spa",
            "expired",  # exported today, ten days after AT
        )
        json.dumps(account)
    with db.transaction() as session:
        customers.merge_customers(session, survivor, shop, reason="same", actor="t")
    with db.transaction() as session:
        result = vouchers.check(session, code, AT)
        assert result.voucher is not None
        assert result.voucher.customer_id == survivor


# --- CLI and API ------------------------------------------------------------------------


@pytest.fixture
def cli(db: Store) -> Cli:
    return Cli(db.url)


def test_the_cli_sets_lists_redeems_checks_uses_and_cancels(db, cli, shop, tmp_path):
    catalogue = tmp_path / "rewards.yaml"
    catalogue.write_text(CATALOGUE.replace("stock: 2", "stock: 3"))
    cli.ok("loyalty", "rewards", "plussa", "--set", str(catalogue))
    listed = cli.json("loyalty", "rewards", "plussa")
    assert [(r["key"], r["stock_left"]) for r in listed][:2] == [("coffee", 3), ("evening", None)]
    seen = cli.json("loyalty", "rewards", "plussa", "--for", str(shop))
    assert {o["reward"]["key"]: o["redeemable"] for o in seen}["lounge"] is False
    voucher = cli.json(
        "loyalty", "redeem", "plussa", str(shop), "evening", "--option", "spa", "--request", "app:1"
    )
    assert voucher["option_name"] == "Spa entry"
    again = cli.json(
        "loyalty", "redeem", "plussa", str(shop), "evening", "--option", "spa", "--request", "app:1"
    )
    assert again["code"] == voucher["code"]
    assert "valid" in cli.ok("loyalty", "voucher", voucher["code"]).stdout
    used = cli.ok("loyalty", "voucher", voucher["code"], "--use", "--receipt", "till:K1")
    assert "till/K1" in used.stdout
    checked = cli("loyalty", "voucher", voucher["code"])
    assert checked.exit_code == 1
    assert checked.stdout.startswith("used:")
    assert "till/K1" in error_line(
        cli("loyalty", "voucher", voucher["code"], "--use", "--receipt", "till:K2")
    )
    coffee = cli.json("loyalty", "redeem", "plussa", str(shop), "coffee")
    cli.ok("loyalty", "voucher", coffee["code"], "--cancel", "--reason", "changed mind")
    assert cli.json("loyalty", "balance", "plussa", str(shop))["available"] == 500
    cli.ok("loyalty", "rewards", "plussa", "--retire", "coffee")
    assert "coffee" not in [r["key"] for r in cli.json("loyalty", "rewards", "plussa")]
    statuses = [v["status"] for v in cli.json("loyalty", "vouchers", "plussa", str(shop))]
    assert statuses == ["cancelled", "used"]


@pytest.mark.parametrize(
    ("args", "place"),
    [
        (("redeem", "plussa", "CUSTOMER", "evening"), "option"),
        (("redeem", "plussa", "CUSTOMER", "coffee", "--request", "nocolon"), "--request"),
        (("voucher", "ABCD", "--use", "--receipt", "t:1"), "code"),
        (("voucher", "ABCD", "--use"), "--receipt"),
        (("voucher", "ABCD", "--cancel"), "--reason"),
        (("rewards", "plussa", "--set", "BAD"), "rewards[0].cost_points"),
        (("rewards", "plussa", "--retire", "nosuch"), "'nosuch'"),
    ],
)
def test_the_cli_refuses_bad_input_in_one_line(cli, shop, tmp_path, args, place):
    bad = tmp_path / "bad.yaml"
    bad.write_text("- {key: x, name: X, kind: goods, cost_points: -1}\n")
    args = tuple(str(bad) if a == "BAD" else str(shop) if a == "CUSTOMER" else a for a in args)
    assert place in error_line(cli("loyalty", *args))


def test_the_api_serves_the_catalogue_redemption_and_the_till(db, shop):
    key = make_key(db, ["loyalty:read", "loyalty:write"])
    with TestClient(create_app(db), headers={"Authorization": f"Bearer {key}"}) as api:
        base = "/v1/loyalty/programmes/plussa"
        put = api.put(
            f"{base}/rewards/tea",
            json={"name": "Tea", "kind": "goods", "cost_points": 50, "stock": 1},
        )
        assert put.status_code == 200, put.text
        assert put.json()["stock_left"] == 1
        bad = api.put(
            f"{base}/rewards/tea", json={"name": "Tea", "kind": "partner", "cost_points": 50}
        )
        assert bad.status_code == 422
        assert bad.json()["detail"][0]["loc"][-1] == "partner"
        assert "tea" in [r["key"] for r in api.get(f"{base}/rewards").json()]
        offers = api.get(f"{base}/members/{shop}/rewards", params={"redeemable": True}).json()
        assert "lounge" not in [o["reward"]["key"] for o in offers]
        body = {"reward": "tea", "source": "app", "external_id": "A1"}
        made = api.post(f"{base}/members/{shop}/redemptions", json=body)
        assert made.status_code == 201, made.text
        code = made.json()["code"]
        assert api.post(f"{base}/members/{shop}/redemptions", json=body).json()["code"] == code
        sold_out = api.post(
            f"{base}/members/{shop}/redemptions", json={**body, "external_id": "A2"}
        )
        assert sold_out.status_code == 422
        assert "out of stock" in sold_out.text
        checked = api.get(f"/v1/loyalty/vouchers/{code.lower()}").json()
        assert (checked["verdict"], checked["voucher"]["reward"]) == ("valid", "tea")
        assert api.get("/v1/loyalty/vouchers/ABCD").json()["verdict"] == "mistyped"
        receipt = {"source": "till", "external_id": "K1"}
        assert api.post(f"/v1/loyalty/vouchers/{code}/use", json=receipt).status_code == 200
        assert api.post(f"/v1/loyalty/vouchers/{code}/use", json=receipt).status_code == 200
        second = api.post(f"/v1/loyalty/vouchers/{code}/use", json={**receipt, "external_id": "K2"})
        assert second.status_code == 409
        assert (
            api.post(f"/v1/loyalty/vouchers/{code}/cancel", json={"reason": "x"}).status_code == 409
        )
        listed = api.get(f"{base}/members/{shop}/vouchers").json()
        assert [v["status"] for v in listed] == ["used"]
        retired = api.delete(f"{base}/rewards/tea")
        assert retired.json()["retired_at"] is not None
        (entry,) = [e for e in api.get(f"{base}/members/{shop}/statement").json() if e["reward"]]
        assert entry["voucher"] == code


def test_the_api_needs_the_loyalty_permissions(db, shop):
    key = make_key(db, ["loyalty:read"])
    with TestClient(create_app(db), headers={"Authorization": f"Bearer {key}"}) as api:
        base = "/v1/loyalty/programmes/plussa"
        assert api.get(f"{base}/rewards").status_code == 200
        body = {"reward": "coffee", "source": "app", "external_id": "A1"}
        assert api.post(f"{base}/members/{shop}/redemptions", json=body).status_code == 403
        assert api.post("/v1/loyalty/vouchers/X/use", json=body).status_code == 403
        assert api.delete(f"{base}/rewards/coffee").status_code == 403


def test_rewards_are_kept_per_programme(db, shop):
    with db.transaction() as session:
        ledger.create_programme(session, "other", "Other")
        rewards.set_rewards(
            session, "other", "- {key: coffee, name: Other coffee, kind: goods, cost_points: 1}"
        )
        assert rewards.get_reward(session, "plussa", "coffee").name == "Coffee and a bun"
        assert rewards.get_reward(session, "other", "coffee").name == "Other coffee"


# --- properties -------------------------------------------------------------------------

steps = st.lists(
    st.one_of(
        st.tuples(st.just("redeem"), st.sampled_from(["scarf", "mug"])),
        st.tuples(st.just("use"), st.integers(0, 30)),
        st.tuples(st.just("cancel"), st.integers(0, 30)),
        st.tuples(st.just("give"), st.integers(1, 400)),
        st.tuples(st.just("wait"), st.integers(1, 20)),
    ),
    max_size=25,
)
PROPERTY_CATALOGUE = """
- {key: scarf, name: Scarf, kind: goods, cost_points: 150, stock: 3}
- {key: mug, name: Mug, kind: goods, cost_points: 80, limit_per_member: 2, limit_period_days: 14}
"""


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(sequence=steps)
def test_random_redemptions_uses_and_cancellations_keep_stock_points_and_vouchers_whole(
    store: Store, sequence: list[Any]
) -> None:
    empty_tables(store)
    with store.transaction() as session:
        ledger.create_programme(session, "plussa", "Plussa")
        member = make_customer(session).id
        ledger.join(session, "plussa", member, at=WHEN)
        rewards.set_rewards(session, "plussa", PROPERTY_CATALOGUE, WHEN)
    at, given_points, codes, refusals = AT, 0, [], []
    for n, step in enumerate(sequence):
        with store.transaction() as session:
            kind = step[0]
            if kind == "give":
                ledger.adjust(
                    session,
                    "plussa",
                    member,
                    step[1],
                    reason="r",
                    staff="s",
                    source="t",
                    external_id=f"g{n}",
                    at=at,
                )
                given_points += step[1]
            elif kind == "redeem":
                try:
                    made = rewards.redeem(
                        session, "plussa", member, step[1], source="a", external_id=f"r{n}", at=at
                    )
                    codes.append(made.code)
                except InvalidInput as refused:
                    refusals.append(refused.field)
            elif kind in ("use", "cancel") and codes:
                code = codes[step[1] % len(codes)]
                try:
                    if kind == "use":
                        vouchers.use(session, code, source="till", external_id=f"k{n}", at=at)
                    else:
                        vouchers.cancel(session, code, reason="r", staff="s", at=at)
                except Conflict:
                    pass
            elif kind == "wait":
                at += timedelta(days=step[1])
        with store.transaction() as session:
            held = session.scalars(select(Voucher)).all()
            kept = [v for v in held if v.status != VoucherStatus.CANCELLED]
            scarf = rewards.get_reward(session, "plussa", "scarf")
            assert scarf.stock_left == 3 - sum(v.reward_id == scarf.id for v in kept) >= 0
            mug = rewards.get_reward(session, "plussa", "mug")
            for v in kept:
                window = [
                    w
                    for w in kept
                    if w.reward_id == mug.id
                    and v.issued_at - timedelta(days=14) < w.issued_at <= v.issued_at
                ]
                assert len(window) <= 2
            balance = ledger.balance(session, "plussa", member, at)
            assert balance.available == given_points - sum(v.points for v in kept) >= 0
            assert all(v.used_at is None for v in held if v.status == VoucherStatus.CANCELLED)
    assert set(refusals) <= {"reward"}


def test_the_cli_tables_show_stock_limits_reasons_and_vouchers(db, cli, shop):
    catalogue = cli.ok("loyalty", "rewards", "plussa").stdout
    assert "coffee" in catalogue and "2 of 2" in catalogue and "gold" in catalogue
    seen = cli.ok("loyalty", "rewards", "plussa", "--for", str(shop)).stdout
    assert "only for Gold" in seen
    printed = cli.ok("loyalty", "redeem", "plussa", str(shop), "coffee").stdout
    assert printed.startswith("Voucher ") and "Coffee and a bun" in printed
    listed = cli.ok("loyalty", "vouchers", "plussa", str(shop)).stdout
    assert "Coffee" in listed and "issued" in listed
    statement = cli.ok("loyalty", "statement", "plussa", str(shop)).stdout
    assert "Coffee" in statement


def test_the_api_refuses_a_body_naming_another_reward(db, shop):
    key = make_key(db, ["loyalty:read", "loyalty:write"])
    with TestClient(create_app(db), headers={"Authorization": f"Bearer {key}"}) as api:
        body = {"key": "mug", "name": "Tea", "kind": "goods", "cost_points": 5}
        answer = api.put("/v1/loyalty/programmes/plussa/rewards/tea", json=body)
        assert answer.status_code == 422
        assert answer.json()["detail"][0]["loc"][-1] == "key"
        unknown = api.put(
            "/v1/loyalty/programmes/plussa/rewards/tea", json={**body, "key": "tea", "x": 1}
        )
        assert unknown.status_code == 422
        assert api.get("/v1/loyalty/programmes/nosuch/rewards").status_code == 404
