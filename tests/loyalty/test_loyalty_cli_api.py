"""`oppiva loyalty ...` and `/v1/loyalty`: programmes, joining, balance, statement, adjustment
and expiry, with the bad input each refuses; on both databases."""

from __future__ import annotations

import csv
import io

import pytest
from fastapi.testclient import TestClient

from oppiva.api.app import create_app
from oppiva.db import Store
from tests.cli.conftest import Cli, error_line
from tests.conftest import make_key
from tests.factories import make_customer

RULES = "id: everyday\nrules:\n  - {name: base, kind: per_euro, points_per_euro: 2}\n"


@pytest.fixture
def cli(db: Store) -> Cli:
    return Cli(db.url)


@pytest.fixture
def customer(db: Store) -> int:
    with db.transaction() as session:
        return make_customer(session).id


def test_create_join_adjust_balance_statement_and_expire(cli, customer, tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    cli.ok("loyalty", "create", "plussa", "Plussa", "--rules", str(rules))
    cli.ok("loyalty", "create", "vip", "Chosen few", "--kind", "silent")
    programmes = cli.json("loyalty", "programmes")
    assert [(p["key"], p["kind"], p["has_rules"]) for p in programmes] == [
        ("plussa", "open", True),
        ("vip", "silent", False),
    ]
    assert "member 1 of plussa" in cli.ok("loyalty", "join", "plussa", str(customer)).stdout
    cli.ok(
        "loyalty", "adjust", "plussa", str(customer), "100", "--reason", "sorry", "--staff", "eeva"
    )
    cli.ok(
        "loyalty", "adjust", "plussa", str(customer), "-30", "--reason", "typo", "--staff", "eeva"
    )
    assert cli.json("loyalty", "balance", "plussa", str(customer))["available"] == 70
    rows = list(
        csv.DictReader(
            io.StringIO(cli.ok("loyalty", "statement", "plussa", str(customer), "--csv").stdout)
        )
    )
    assert [(r["kind"], r["points"], r["balance"], r["reason"]) for r in rows] == [
        ("adjust", "100", "100", "sorry"),
        ("adjust", "-30", "70", "typo"),
    ]
    assert "Expired 0 points" in cli.ok("loyalty", "expire").stdout


@pytest.mark.parametrize(
    ("args", "place"),
    [
        (("join", "nosuch", "1"), "'nosuch'"),
        (("balance", "plussa", "999999"), "customer_id"),
        (("adjust", "plussa", "1", "0", "--reason", "r", "--staff", "s"), "points"),
        (("create", "other", "Other", "--rules", "RULES"), "rules[0].points_per_euro"),
        (("create", "other", "Other", "--rules", "missing.yaml"), "--rules"),
    ],
)
def test_the_cli_refuses_bad_input_in_one_line(cli, customer, tmp_path, args, place):
    cli.ok("loyalty", "create", "plussa", "Plussa")
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: x\nrules:\n  - {name: a, kind: per_euro, points_per_euro: -1}\n")
    args = tuple(
        str(bad) if a == "RULES" else str(tmp_path / a) if a == "missing.yaml" else a for a in args
    )
    assert place in error_line(cli("loyalty", *args))


def test_the_api_lists_joins_and_reads(db, cli, customer):
    cli.ok("loyalty", "create", "plussa", "Plussa")
    key = make_key(db, ["loyalty:read", "loyalty:write"])
    with TestClient(create_app(db), headers={"Authorization": f"Bearer {key}"}) as api:
        joined = api.post("/v1/loyalty/programmes/plussa/members", json={"customer_id": customer})
        assert joined.status_code == 201, joined.text
        assert joined.json()["member_number"] == 1
        again = api.post("/v1/loyalty/programmes/plussa/members", json={"customer_id": customer})
        assert again.json()["member_number"] == 1
        assert api.get("/v1/loyalty/programmes").json()[0]["members"] == 1
        cli.ok("loyalty", "adjust", "plussa", str(customer), "5", "--reason", "r", "--staff", "s")
        base = f"/v1/loyalty/programmes/plussa/members/{customer}"
        assert api.get(f"{base}/balance").json()["available"] == 5
        (entry,) = api.get(f"{base}/statement").json()
        assert (entry["kind"], entry["points"], entry["staff"]) == ("adjust", 5, "s")

        for response, loc in [
            (
                api.post("/v1/loyalty/programmes/plussa/members", json={"customer_id": 0}),
                "customer_id",
            ),
            (
                api.post(
                    "/v1/loyalty/programmes/plussa/members",
                    json={"customer_id": customer, "source": "x"},
                ),
                "source",
            ),
            (api.get("/v1/loyalty/programmes/plussa/members/999999/balance"), "customer_id"),
        ]:
            assert response.status_code == 422, response.text
            assert response.json()["detail"][0]["loc"][-1] == loc
        assert api.get("/v1/loyalty/programmes/nosuch/members/1/statement").status_code == 404


def test_the_api_needs_the_loyalty_permissions(db, cli, customer):
    cli.ok("loyalty", "create", "plussa", "Plussa")
    key = make_key(db, ["loyalty:read"])
    with TestClient(create_app(db), headers={"Authorization": f"Bearer {key}"}) as api:
        assert api.get("/v1/loyalty/programmes").status_code == 200
        joined = api.post("/v1/loyalty/programmes/plussa/members", json={"customer_id": customer})
        assert joined.status_code == 403
