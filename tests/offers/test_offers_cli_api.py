"""`oppiva offers campaign ...`, coupons, attributes, choices and their `/v1` routes, with the
bad input each refuses; on both databases."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from oppiva.api.app import create_app
from oppiva.db import Store
from tests.cli.conftest import Cli, error_line
from tests.conftest import make_key
from tests.offers.coupon_world import candidate, make_consenting, make_product, today


@pytest.fixture
def cli(db: Store) -> Cli:
    return Cli(db.url)


@pytest.fixture
def world(db: Store) -> dict[str, int]:
    """Two consenting customers with three known and one new candidate each."""
    with db.transaction() as session:
        a, b = make_consenting(session), make_consenting(session, language="fi")
        products = [make_product(session, sku=f"SKU{i}", group=f"g{i}") for i in range(4)]
        for who in (a, b):
            for rank, p in enumerate(products[:3], 1):
                candidate(session, who, p, "known", rank)
            candidate(session, who, products[3], "new", 1, "popular", {})
        return {"a": a.id, "b": b.id}


def dates() -> list[str]:
    return ["--valid-from", str(today()), "--valid-until", str(today() + timedelta(days=14))]


def test_create_run_report_seen_and_match_from_the_cli(cli, world):
    cli.ok(
        "offers",
        "campaign",
        "create",
        "autumn",
        "Autumn",
        *dates(),
        "--known",
        "2",
        "--new",
        "1",
        "--holdout",
        "0",
        "--budget-eur",
        "100",
    )
    (listed,) = cli.json("offers", "campaign", "list")
    assert (listed["key"], listed["known_per_customer"], listed["budget_eur"]) == (
        "autumn",
        2,
        "100.00",
    )
    run = cli.json("offers", "campaign", "run", "autumn")
    assert (run["coupons"], run["treatment"], run["refused"]["budget"]) == (6, 2, 0)
    again = cli.json("offers", "campaign", "run", "autumn")
    assert (again["coupons"], again["already_in_campaign"]) == (0, 2)
    mine = cli.json("offers", "coupons", str(world["b"]))
    assert {c["sku"] for c in mine} == {"SKU0", "SKU1", "SKU3"}
    assert "Asiakkaidemme suosikki" in {c["explanation"] for c in mine}
    assert "seen" in cli.ok("offers", "seen", mine[0]["code"].lower()).stdout
    assert cli.json("offers", "match") == {"redeemed": 0, "expired": 0}
    report = cli.json("offers", "campaign", "report", "autumn")
    assert (report["coupons"], report["seen"], report["redemption_rate"]) == (6, 1, 0.0)
    assert "Campaign autumn: 0 coupons" in cli.ok("offers", "campaign", "run", "autumn").stdout


@pytest.mark.parametrize(
    ("args", "place"),
    [
        (("campaign", "run", "nosuch"), "'nosuch'"),
        (("campaign", "report", "nosuch"), "'nosuch'"),
        (
            ("campaign", "create", "x", "X", "--valid-from", "soon", "--valid-until", "2026-12-01"),
            "--valid-from",
        ),
        (("campaign", "create", "x", "X", "DATES", "--stock", "SKU0"), "--stock"),
        (("campaign", "create", "x", "X", "DATES", "--stock", "NOPE=3"), "stock"),
        (("campaign", "create", "x", "X", "DATES", "--channel", "fax"), "channel"),
        (("campaign", "create", "x", "X", "DATES", "--budget-eur", "lots"), "--budget-eur"),
        (("seen", "NOSUCHCODE"), "NOSUCHCODE"),
        (("attributes", "CUSTOMER", "--set", "balcony=maybe"), "--set"),
        (("choose", "CUSTOMER", "NOPE", "--campaign", "autumn"), "products[0]"),
    ],
)
def test_the_cli_refuses_bad_input_in_one_line(cli, world, args, place):
    cli.ok("offers", "campaign", "create", "autumn", "Autumn", *dates(), "--holdout", "0")
    expanded: list[str] = []
    for arg in args:
        expanded.extend(
            dates() if arg == "DATES" else [str(world["a"]) if arg == "CUSTOMER" else arg]
        )
    assert place in error_line(cli("offers", *expanded))


def test_bad_criteria_are_refused_with_the_place_underlined(cli, world):
    result = cli("offers", "campaign", "create", "x", "X", *dates(), "--criteria", "visits >= 2")
    assert result.exit_code == 2
    first, excerpt, marks = result.stderr.splitlines()
    assert first.startswith("error: audience_criteria: line 1, column 1: ")
    assert "visits" in first and excerpt.strip() == "visits >= 2" and marks.strip() == "^^^^^^"
    cli.ok("offers", "campaign", "create", "x", "X", *dates(), "--criteria", "visits_365d >= 2")
    listed = cli.json("offers", "campaign", "list")
    assert [c["audience_criteria"] for c in listed if c["key"] == "x"] == ["visits_365d >= 2"]


def test_attributes_and_choose_your_offers_from_the_cli(cli, world):
    cli.ok(
        "offers", "campaign", "create", "pick", "Pick", *dates(), "--holdout", "0", "--picks", "2"
    )
    a = str(world["a"])
    shown = cli.json("offers", "attributes", a, "--set", "balcony=true", "--set", "pet=false")
    assert shown["stated"] == {"balcony": True, "pet": False}
    offers = cli.json("offers", "choice", a, "--campaign", "pick")
    assert [o["sku"] for o in offers["offers"]] == ["SKU0", "SKU3", "SKU1", "SKU2"]
    assert offers["picks_left"] == 2
    picked = cli.json("offers", "choose", a, "SKU1", "--campaign", "pick")
    assert [c["source"] for c in picked] == ["choice"]
    line = error_line(cli("offers", "choose", a, "SKU0", "SKU2", "--campaign", "pick"))
    assert "products" in line and "only 1 of 2" in line
    assert cli.json("offers", "choice", a, "--campaign", "pick")["picks_left"] == 1


def test_the_api_runs_campaigns_and_lets_customers_choose(db, world):
    key = make_key(db, ["offers:read", "offers:write"])
    body = {
        "key": "autumn",
        "name": "Autumn",
        "valid_from": str(today()),
        "valid_until": str(today() + timedelta(days=14)),
        "known_per_customer": 1,
        "new_per_customer": 0,
        "holdout_share": 0,
    }
    with TestClient(create_app(db), headers={"Authorization": f"Bearer {key}"}) as api:
        created = api.post("/v1/offers/campaigns", json=body)
        assert created.status_code == 201, created.text
        assert api.post("/v1/offers/campaigns", json=body).status_code == 409
        run = api.post("/v1/offers/campaigns/autumn/run").json()
        assert run["coupons"] == 2
        a = world["a"]
        (coupon,) = api.get(f"/v1/customers/{a}/coupons").json()
        seen = api.post(f"/v1/offers/coupons/{coupon['code']}/seen")
        assert seen.json()["status"] == "seen", seen.text
        assert api.get(f"/v1/offers/coupons/{coupon['code']}").json()["sku"] == "SKU0"
        assert api.post("/v1/offers/match").json() == {"redeemed": 0, "expired": 0}
        report = api.get("/v1/offers/campaigns/autumn/report").json()
        assert (report["coupons"], report["seen"], report["method"]) == (2, 1, "welch-t")

        shown = api.get(
            f"/v1/customers/{a}/offers", params={"context": "choice", "campaign": "autumn"}
        )
        assert shown.status_code == 200, shown.text
        skus = [o["sku"] for o in shown.json()["offers"]]
        assert skus == ["SKU3", "SKU1", "SKU2"]
        picked = api.post(
            f"/v1/customers/{a}/offers/choices",
            json={"campaign": "autumn", "products": ["SKU3", "SKU2"]},
        )
        assert picked.status_code == 201, picked.text
        assert {c["sku"] for c in picked.json()} == {"SKU3", "SKU2"}
        attrs = api.put(f"/v1/customers/{a}/offers/attributes", json={"attributes": {"baby": True}})
        assert attrs.json()["in_effect"] == {"baby": True}

        for response, status, text in [
            (api.post("/v1/offers/campaigns/nosuch/run"), 404, "nosuch"),
            (api.get("/v1/offers/campaigns/nosuch/report"), 404, "nosuch"),
            (
                api.post(
                    f"/v1/customers/{a}/offers/choices",
                    json={"campaign": "nosuch", "products": ["SKU1"]},
                ),
                404,
                "nosuch",
            ),
            (
                api.post(
                    f"/v1/customers/{a}/offers/choices",
                    json={"campaign": "autumn", "products": ["SKU0"]},
                ),
                422,
                "products[0]",
            ),
            (
                api.post(
                    f"/v1/customers/{a}/offers/choices",
                    json={"campaign": "autumn", "products": ["SKU1"] * 2},
                ),
                422,
                "twice",
            ),
            (
                api.post(
                    "/v1/offers/campaigns",
                    json={**body, "key": "regulars", "audience_criteria": "visits_365d >> 2"},
                ),
                422,
                "audience_criteria",
            ),
            (
                api.post(
                    f"/v1/customers/{a}/offers/choices",
                    json={"campaign": "autumn", "products": ["SKU1", "A", "B", "C"]},
                ),
                422,
                "only 3 of 5",
            ),
            (
                api.post("/v1/offers/campaigns", json={**body, "key": "b", "channel": "fax"}),
                422,
                "channel",
            ),
            (
                api.get(
                    f"/v1/customers/{a}/offers", params={"context": "till", "campaign": "autumn"}
                ),
                422,
                "context",
            ),
        ]:
            assert response.status_code == status, response.text
            assert text in response.text


def test_the_api_needs_the_offers_permissions(db, world):
    key = make_key(db, ["offers:read"])
    with TestClient(create_app(db), headers={"Authorization": f"Bearer {key}"}) as api:
        assert api.get("/v1/offers/campaigns").status_code == 200
        refused = api.post("/v1/offers/campaigns", json={"key": "x"})
        assert refused.status_code == 403
