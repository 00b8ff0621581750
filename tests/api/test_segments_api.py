"""`/v1/segments`, `/v1/classes`, quiet hours and the customer card's segmentation, over a
store that `analyze` has seen."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient

from oppiva.analytics.analysis import analyze
from oppiva.api.app import create_app
from oppiva.db import Store
from oppiva.purchases import service
from oppiva.purchases.schemas import OutletIn, ProductIn, ReceiptIn
from tests.conftest import make_key

AS_OF = date(2026, 5, 31)


def _url(db: Store) -> str:
    return db.engine.url.render_as_string(hide_password=False)


@pytest.fixture
def analysed(db: Store) -> dict[str, int]:
    """Two card holders at one store: a weekly big spender and a one-off; analysed at AS_OF.
    Returns their customer ids."""
    with db.transaction() as session:
        service.save_outlet(session, OutletIn(code="kamppi", name="Kamppi", kind="store"))
        for sku, department in [("MILK", "Dairy"), ("STEAK", "Fresh food"), ("WINE", "Drinks")]:
            service.save_product(
                session,
                ProductIn(sku=sku, name=sku, department=department, group=department, price="10"),
            )
        ids = {}
        start = datetime(2025, 6, 2, 8, tzinfo=UTC)
        for n in range(45):
            receipt, _ = service.record_receipt(
                session,
                _receipt(f"W{n}", start + timedelta(days=7 * n), "6012000000000001", "60.00"),
            )
            ids["weekly"] = receipt.customer_id
        receipt, _ = service.record_receipt(
            session, _receipt("ONCE", datetime(2026, 5, 20, 9, tzinfo=UTC), "6012000000000002", "5")
        )
        ids["once"] = receipt.customer_id
    analyze(_url(db), as_of=AS_OF)
    return {k: int(v) for k, v in ids.items() if v is not None}


def _receipt(external_id: str, when: datetime, card: str, steak: str) -> ReceiptIn:
    total = Decimal(steak)
    return ReceiptIn.model_validate(
        {
            "source": "till",
            "external_id": external_id,
            "purchased_at": when,
            "store": "kamppi",
            "identifiers": [{"kind": "card", "value": card}],
            "lines": [{"sku": "STEAK", "quantity": 1, "unit_price": total, "line_total": total}],
        }
    )


def test_a_segment_is_defined_checked_listed_and_deleted(client):
    response = client.put(
        "/v1/segments/big-spenders", json={"criteria": "SPEND_365D  >  1000 AND visits_365d>=40"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["criteria"] == "spend_365d > 1000 and visits_365d >= 40"
    listed = client.get("/v1/segments").json()
    assert [s["key"] for s in listed["segments"]] == ["big-spenders"]
    checked = client.post("/v1/segments/check", json={"criteria": 'units_in("Cars") >= 2'})
    assert checked.json() == {
        "criteria": 'units_in("Cars") >= 2',
        "features": [],
        "functions": ['units_in("Cars")'],
    }
    assert client.delete("/v1/segments/big-spenders").status_code == 204
    assert client.get("/v1/segments/big-spenders").status_code == 404


def test_bad_definitions_are_refused_with_the_place_and_the_reason(client):
    response = client.put("/v1/segments/x", json={"criteria": "visits_365d >= "})
    assert response.status_code == 422
    detail = response.json()["detail"][0]
    assert detail["loc"] == ["criteria"]
    assert "column 16" in detail["msg"]
    response = client.put("/v1/segments/x", json={"criteria": "vists_365d > 1"})
    assert "visits_365d" in response.json()["detail"][0]["msg"]  # the suggestion
    response = client.put("/v1/segments/Bad Key", json={"criteria": "visits_365d > 1"})
    assert response.json()["detail"][0]["loc"] == ["key"]
    response = client.put("/v1/segments/x", json={"preset": "no-such"})
    assert response.json()["detail"][0]["loc"] == ["preset"]
    assert client.get("/v1/segments").json()["segments"] == []


def test_presets_are_listed_and_define_a_segment(client):
    presets = {p["preset"]: p for p in client.get("/v1/segments/presets").json()}
    assert set(presets) == {
        "department-store-key",
        "telecom-regular",
        "car-dealer-regular",
        "magazine-regular",
    }
    response = client.put("/v1/segments/dept-key", json={"preset": "department-store-key"})
    assert response.json()["criteria"] == presets["department-store-key"]["criteria"]


def test_members_classes_and_the_customer_card_after_an_analysis(db, client, analysed):
    client.put("/v1/segments/weekly", json={"criteria": "visits_365d >= 40"})
    analyze(_url(db), as_of=AS_OF + timedelta(days=1))
    members = client.get("/v1/segments/weekly/members").json()
    assert members["customer_ids"] == [analysed["weekly"]]
    key = client.get("/v1/classes/class/key/members", params={"on": AS_OF.isoformat()}).json()
    assert key["customer_ids"] == [analysed["weekly"]]
    before = client.get("/v1/classes/class/key/members", params={"on": "2026-05-01"}).json()
    assert before["customer_ids"] == []  # no analysis had seen anyone yet
    card = client.get(f"/v1/customers/{analysed['once']}").json()
    segmentation = card["profile"]["segmentation"]
    assert segmentation["relationship_class"] == "occasional"
    assert segmentation["lifecycle_stage"] == "new"
    assert segmentation["features"]["visits_total"] == 1
    matrix = client.get(
        "/v1/classes/class/migration",
        params={"start": AS_OF.isoformat(), "end": (AS_OF + timedelta(days=1)).isoformat()},
    ).json()["matrix"]
    assert matrix == {"key": {"key": 1}, "occasional": {"occasional": 1}}


def test_quiet_hours_and_their_audience(client, analysed):
    hours = client.get("/v1/outlets/kamppi/quiet-hours").json()
    assert hours["open"] >= 1
    assert all(0 <= s["weekday"] <= 6 and 0 <= s["hour"] <= 23 for s in hours["slots"])
    assert client.get("/v1/outlets/nowhere/quiet-hours").status_code == 404
    audience = client.get("/v1/outlets/kamppi/quiet-hours/audience").json()
    assert audience["store"] == "kamppi"


def test_members_need_customer_access_and_definitions_need_segments_write(db, analysed):
    key = make_key(db, ["aggregates:read"])
    with TestClient(create_app(db), headers={"Authorization": f"Bearer {key}"}) as analyst:
        assert analyst.get("/v1/segments").status_code == 200
        assert analyst.get("/v1/classes/class/key/members").status_code == 403
        denied = analyst.put("/v1/segments/x", json={"criteria": "visits_365d > 1"})
        assert denied.status_code == 403
