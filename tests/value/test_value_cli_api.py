"""Customer value from the outside: `oppiva value ...`, `/v1/value/models`,
`/v1/customers/{id}/value`, the card's `profile.value`, export and erasure."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from oppiva.analytics.analysis import analyze
from oppiva.api.app import create_app
from oppiva.cli.main import app
from oppiva.db import Store
from oppiva.value.models import CustomerValue
from tests.conftest import make_key
from tests.value.test_card_stage import AS_OF, build_store, url_of

INDICATORS = {
    "repeat_purchases_and_retention",
    "share_of_wallet",
    "profitability",
    "preference_knowledge",
    "dialogue_engagement",
    "referral_value",
}


@pytest.fixture
def valued(db: Store) -> dict[str, int]:
    ids = build_store(db)
    analyze(url_of(db), as_of=AS_OF)
    return ids


@pytest.fixture
def client(db: Store) -> Iterator[TestClient]:
    with TestClient(create_app(db), headers={"Authorization": f"Bearer {make_key(db)}"}) as c:
        yield c


def cli(db: Store, *args: str) -> str:
    result = CliRunner().invoke(app, ["--database", url_of(db), "value", *args])
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


def test_the_card_in_the_api_and_on_the_customer_card(client, valued):
    weekly = client.get(f"/v1/customers/{valued['weekly']}/value")
    assert weekly.status_code == 200, weekly.text
    card = weekly.json()
    assert set(card) == INDICATORS | {"as_of"}
    assert card["as_of"] == AS_OF.isoformat()
    retention = card["repeat_purchases_and_retention"]
    assert retention["repeat_purchases"] == 51
    assert 0.9 < retention["p_alive"] <= 1.0
    assert card["profitability"]["clv_12m"] > 0
    assert card["referral_value"] == {"referrals": 0, "value": 0.0}
    profile = client.get(f"/v1/customers/{valued['weekly']}").json()["profile"]
    assert profile["value"] == card
    assert client.get("/v1/customers/999999/value").status_code == 404


def test_the_models_are_listed_with_intervals(client, valued):
    models = client.get("/v1/value/models").json()
    assert {m["model"] for m in models} == {"bgnbd", "gg"}
    for model in models:
        assert model["as_of"] == AS_OF.isoformat()
        for p in model["parameters"].values():
            assert p["low"] <= p["estimate"] <= p["high"]
    assert client.get("/v1/value/models", params={"as_of": "2020-01-01"}).json() == []


def test_permissions(db, valued):
    key = make_key(db, ["aggregates:read"])
    with TestClient(create_app(db), headers={"Authorization": f"Bearer {key}"}) as analyst:
        assert analyst.get("/v1/value/models").status_code == 200
        assert analyst.get(f"/v1/customers/{valued['weekly']}/value").status_code == 403
    key = make_key(db, ["customers:read"])
    with TestClient(create_app(db), headers={"Authorization": f"Bearer {key}"}) as clerk:
        assert clerk.get("/v1/value/models").status_code == 403
        assert clerk.get(f"/v1/customers/{valued['weekly']}/value").status_code == 200


def test_export_includes_the_card_and_erasure_removes_it(db, client, valued):
    customer = valued["weekly"]
    exported = client.get(f"/v1/customers/{customer}/export").json()
    record = exported["records"][0]
    assert record["value"]["repeat_purchases_and_retention"]["repeat_purchases"] == 51
    assert client.delete(f"/v1/customers/{customer}").status_code in (200, 204)
    with db.transaction() as session:
        assert session.get(CustomerValue, customer) is None
        assert session.get(CustomerValue, valued["once"]) is not None


def test_the_cli_shows_fits_lists_and_scores(db, valued):
    shown = cli(db, "show", str(valued["weekly"]))
    for label in ("repeat purchases and retention", "share of wallet", "referral value"):
        assert label in shown
    card = json.loads(cli(db, "show", str(valued["weekly"]), "--json"))
    assert set(card) == INDICATORS | {"as_of"}
    listed = json.loads(cli(db, "models", "--json"))
    assert {m["model"] for m in listed} == {"bgnbd", "gg"}
    assert "95 % low" in cli(db, "models")
    pareto = json.loads(cli(db, "fit", "--model", "pareto", "--json"))
    assert set(pareto["parameters"]) == {"r", "alpha", "s", "beta"}
    assert pareto["log_likelihood"] < 0 and pareto["new_customer_value"] > 0
    refit = json.loads(cli(db, "fit", "--json"))  # BG/NBD again: the same estimates
    stored = {m["model"]: m for m in listed}["bgnbd"]
    for name, p in refit["parameters"].items():
        assert p["estimate"] == pytest.approx(stored["parameters"][name]["estimate"], rel=1e-6)
    assert {m["model"] for m in json.loads(cli(db, "models", "--json"))} == {
        "bgnbd",
        "gg",
        "pareto",
    }
    top = json.loads(cli(db, "score", "--limit", "3", "--json"))
    assert len(top) == 3
    assert top[0]["clv"] >= card["profitability"]["clv_12m"]
    assert [r["clv"] for r in top] == sorted((r["clv"] for r in top), reverse=True)


def test_the_cli_explains_what_is_missing(db):
    build_store(db, regulars=5)
    analyze(url_of(db), as_of=AS_OF)
    result = CliRunner().invoke(app, ["--database", url_of(db), "value", "fit"])
    assert result.exit_code != 0
    assert "no customer histories" in result.stderr
    result = CliRunner().invoke(app, ["--database", url_of(db), "value", "show", "1"])
    assert result.exit_code != 0
    assert "no value card" in result.stderr
    assert "No value models yet" in cli(db, "models")
