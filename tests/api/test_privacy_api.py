"""The privacy core over HTTP: consent, preferences, the contact check, export and erasure."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

MakeCustomer = Callable[..., dict[str, Any]]

CHANNELS = {"email", "sms", "post", "phone", "push"}
PURPOSES = {"marketing", "profiling", "personalised_offers"}
CARD = "4111 1111 1111 1234"
ADDRESS = {"street": "Katu 1", "postal_code": "00100", "city": "Helsinki"}


def consent(
    client: TestClient,
    customer_id: int,
    status: str = "granted",
    *,
    purpose: str = "marketing",
    channel: str = "email",
    source: str = "web form",
    effective_at: str | None = None,
) -> list[dict[str, Any]]:
    body: dict[str, Any] = {
        "purpose": purpose,
        "channel": channel,
        "status": status,
        "source": source,
    }
    if effective_at is not None:
        body["effective_at"] = effective_at
    response = client.post(f"/v1/customers/{customer_id}/consents", json=body)
    assert response.status_code == 201, response.text
    events: list[dict[str, Any]] = response.json()
    return events


def prefer(client: TestClient, customer_id: int, name: str, value: bool) -> dict[str, Any]:
    response = client.post(
        f"/v1/customers/{customer_id}/preferences",
        json={"name": name, "value": value, "source": "till"},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def can_contact(
    client: TestClient,
    customer_id: int,
    purpose: str = "marketing",
    channel: str = "email",
    at: str | None = None,
) -> dict[str, Any]:
    params = {"purpose": purpose, "channel": channel}
    if at is not None:
        params["at"] = at
    response = client.get(f"/v1/customers/{customer_id}/can-contact", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def current(consents: dict[str, Any], purpose: str, channel: str) -> dict[str, Any]:
    (state,) = [
        s for s in consents["current"] if s["purpose"] == purpose and s["channel"] == channel
    ]
    return state


def found_ids(client: TestClient, q: str) -> list[int]:
    response = client.get("/v1/customers", params={"q": q})
    assert response.status_code == 200, response.text
    return [c["id"] for c in response.json()]


# --- consents -----------------------------------------------------------------------------


def test_consent_is_recorded_as_one_event(client: TestClient, make_customer: MakeCustomer) -> None:
    created = make_customer()

    response = client.post(
        f"/v1/customers/{created['id']}/consents",
        json={
            "purpose": "marketing",
            "channel": "email",
            "status": "granted",
            "source": "web form",
            "note": "newsletter box ticked",
        },
    )

    assert response.status_code == 201, response.text
    (event,) = response.json()
    assert event["customer_id"] == created["id"]
    assert (event["purpose"], event["channel"], event["status"]) == (
        "marketing",
        "email",
        "granted",
    )
    assert event["source"] == "web form"
    assert event["note"] == "newsletter box ticked"
    assert event["effective_at"]


def test_consent_on_channel_all_records_one_event_per_channel(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    created = make_customer()

    events = consent(client, created["id"], channel="all", purpose="profiling")

    assert len(events) == 5
    assert {e["channel"] for e in events} == CHANNELS
    assert {(e["purpose"], e["status"]) for e in events} == {("profiling", "granted")}
    history = client.get(f"/v1/customers/{created['id']}/consents").json()["history"]
    assert len(history) == 5


def test_consents_show_the_decision_in_effect_and_the_whole_history(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    created = make_customer()
    consent(client, created["id"], "granted", effective_at="2025-01-01T00:00:00Z")
    consent(client, created["id"], "withdrawn", effective_at="2025-06-01T00:00:00Z")
    consent(client, created["id"], "denied", purpose="profiling", channel="sms")

    response = client.get(f"/v1/customers/{created['id']}/consents")

    assert response.status_code == 200
    body = response.json()
    assert {(s["purpose"], s["channel"]) for s in body["current"]} == {
        (p, c) for p in PURPOSES for c in CHANNELS
    }
    assert current(body, "marketing", "email")["status"] == "withdrawn"
    assert current(body, "marketing", "email")["source"] == "web form"
    assert current(body, "profiling", "sms")["status"] == "denied"
    never = current(body, "marketing", "sms")
    assert (never["status"], never["since"], never["source"]) == ("unknown", None, None)
    assert [(e["purpose"], e["status"]) for e in body["history"]] == [
        ("marketing", "granted"),
        ("marketing", "withdrawn"),
        ("profiling", "denied"),
    ]


def test_consents_at_a_past_moment_show_the_then_current_decision(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    created = make_customer()
    consent(client, created["id"], "granted", effective_at="2025-01-01T00:00:00Z")
    consent(client, created["id"], "withdrawn", effective_at="2025-06-01T00:00:00Z")

    def status_at(at: str) -> str:
        response = client.get(f"/v1/customers/{created['id']}/consents", params={"at": at})
        assert response.status_code == 200, response.text
        return str(current(response.json(), "marketing", "email")["status"])

    assert status_at("2024-12-31T23:59:59Z") == "unknown"
    assert status_at("2025-03-01T12:00:00+02:00") == "granted"
    assert status_at("2025-07-01T00:00:00Z") == "withdrawn"


def test_a_later_recorded_consent_with_an_earlier_effective_time_does_not_override(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    created = make_customer()
    consent(client, created["id"], "withdrawn", effective_at="2025-06-01T00:00:00Z")
    consent(client, created["id"], "granted", effective_at="2025-01-01T00:00:00Z")

    body = client.get(f"/v1/customers/{created['id']}/consents").json()

    assert current(body, "marketing", "email")["status"] == "withdrawn"
    assert can_contact(client, created["id"])["allowed"] is False


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"channel": "pigeon"}, ["channel"]),
        ({"purpose": "spam"}, ["body", "purpose"]),
        ({"status": "maybe"}, ["body", "status"]),
        ({"source": ""}, ["body", "source"]),
        ({"source": "   "}, ["source"]),
        ({"effective_at": "2025-01-01T00:00:00"}, ["effective_at"]),
        ({"effective_at": "yesterday"}, ["body", "effective_at"]),
    ],
    ids=[
        "unknown-channel",
        "unknown-purpose",
        "unknown-status",
        "empty-source",
        "blank-source",
        "no-time-zone",
        "not-a-time",
    ],
)
def test_invalid_consent_is_422_naming_the_field_and_records_nothing(
    client: TestClient, make_customer: MakeCustomer, body: dict[str, Any], loc: list[str]
) -> None:
    created = make_customer()
    data = {"purpose": "marketing", "channel": "email", "status": "granted", "source": "web"}

    response = client.post(f"/v1/customers/{created['id']}/consents", json={**data, **body})

    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == loc
    assert client.get(f"/v1/customers/{created['id']}/consents").json()["history"] == []


def test_consents_of_unknown_customer_are_404(client: TestClient) -> None:
    assert client.get("/v1/customers/999999/consents").status_code == 404
    response = client.post(
        "/v1/customers/999999/consents",
        json={"purpose": "marketing", "channel": "email", "status": "granted", "source": "web"},
    )
    assert response.status_code == 404


# --- preferences --------------------------------------------------------------------------


def test_preferences_default_to_remember_me_and_offers_welcome(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    created = make_customer()

    response = client.get(f"/v1/customers/{created['id']}/preferences")

    assert response.status_code == 200
    assert response.json() == {"remember_me": True, "no_offers": False}


def test_set_preference_is_returned_and_read_back(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    created = make_customer()

    body = prefer(client, created["id"], "no_offers", True)

    assert body == {"remember_me": True, "no_offers": True}
    assert client.get(f"/v1/customers/{created['id']}/preferences").json() == body


def test_unknown_preference_is_422(client: TestClient, make_customer: MakeCustomer) -> None:
    created = make_customer()

    response = client.post(
        f"/v1/customers/{created['id']}/preferences",
        json={"name": "be_nice", "value": True, "source": "till"},
    )

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "name"]


def test_preferences_of_unknown_customer_are_404(client: TestClient) -> None:
    assert client.get("/v1/customers/999999/preferences").status_code == 404
    response = client.post(
        "/v1/customers/999999/preferences",
        json={"name": "no_offers", "value": True, "source": "till"},
    )
    assert response.status_code == 404


# --- the contact check --------------------------------------------------------------------


def test_granted_consent_with_a_contact_point_allows_contact(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    created = make_customer(emails=["maija@example.fi"])
    consent(client, created["id"], "granted", source="web form")

    body = can_contact(client, created["id"], "marketing", "email")

    assert body["allowed"] is True
    assert body["customer_id"] == created["id"]
    assert (body["purpose"], body["channel"]) == ("marketing", "email")
    assert "granted" in body["reason"]
    assert body["at"]


def test_withdrawn_consent_refuses_contact_saying_it_was_withdrawn(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    created = make_customer()
    consent(client, created["id"], "granted", effective_at="2025-01-01T00:00:00Z")
    consent(client, created["id"], "withdrawn", effective_at="2025-06-01T00:00:00Z", source="call")

    body = can_contact(client, created["id"])

    assert body["allowed"] is False
    assert "withdrawn" in body["reason"]
    assert "2025-06-01" in body["reason"]


def test_denied_consent_refuses_contact(client: TestClient, make_customer: MakeCustomer) -> None:
    created = make_customer()
    consent(client, created["id"], "denied")

    body = can_contact(client, created["id"])

    assert body["allowed"] is False
    assert "denied" in body["reason"]


def test_no_consent_refuses_contact(client: TestClient, make_customer: MakeCustomer) -> None:
    created = make_customer()

    body = can_contact(client, created["id"])

    assert body["allowed"] is False
    assert "no consent" in body["reason"]


def test_consent_on_one_channel_does_not_allow_another(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    created = make_customer()
    consent(client, created["id"], "granted", channel="email")

    assert can_contact(client, created["id"], channel="sms")["allowed"] is False
    assert can_contact(client, created["id"], purpose="personalised_offers")["allowed"] is False


def test_no_offers_preference_refuses_offers_despite_consent(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    created = make_customer()
    consent(client, created["id"], "granted", channel="all")
    consent(client, created["id"], "granted", channel="all", purpose="personalised_offers")
    prefer(client, created["id"], "no_offers", True)

    marketing = can_contact(client, created["id"], "marketing", "email")
    offers = can_contact(client, created["id"], "personalised_offers", "sms")

    assert marketing["allowed"] is False
    assert "no offers" in marketing["reason"]
    assert offers["allowed"] is False


def test_no_offers_preference_does_not_stop_profiling(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    created = make_customer()
    consent(client, created["id"], "granted", purpose="profiling")
    prefer(client, created["id"], "no_offers", True)

    assert can_contact(client, created["id"], "profiling", "email")["allowed"] is True


def test_not_remembered_customer_is_not_profiled(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    created = make_customer()
    consent(client, created["id"], "granted", purpose="profiling")
    prefer(client, created["id"], "remember_me", False)

    body = can_contact(client, created["id"], "profiling", "email")

    assert body["allowed"] is False
    assert "not to be remembered" in body["reason"]


@pytest.mark.parametrize(
    ("channel", "missing"),
    [
        ("email", {"emails": []}),
        ("sms", {"phones": []}),
        ("phone", {"phones": []}),
        ("push", {}),
        ("post", {}),
    ],
)
def test_missing_contact_point_refuses_contact_despite_consent(
    client: TestClient, make_customer: MakeCustomer, channel: str, missing: dict[str, Any]
) -> None:
    created = make_customer(**missing)
    consent(client, created["id"], "granted", channel=channel)

    body = can_contact(client, created["id"], channel=channel)

    assert body["allowed"] is False
    assert "no contact point" in body["reason"]


@pytest.mark.parametrize(
    ("channel", "point"),
    [
        ("sms", {"phones": ["040 123 4567"]}),
        ("push", {"identities": [{"kind": "device", "value": "ios-abc123"}]}),
        ("post", {"addresses": [ADDRESS]}),
    ],
)
def test_contact_point_on_the_channel_allows_contact(
    client: TestClient, make_customer: MakeCustomer, channel: str, point: dict[str, Any]
) -> None:
    created = make_customer(**point)
    consent(client, created["id"], "granted", channel=channel)

    assert can_contact(client, created["id"], channel=channel)["allowed"] is True


def test_removing_the_only_email_refuses_email_contact(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    created = make_customer(emails=["maija@example.fi"])
    consent(client, created["id"], "granted")
    (email,) = [i for i in created["identities"] if i["kind"] == "email"]

    client.delete(f"/v1/customers/{created['id']}/identities/{email['id']}")

    assert can_contact(client, created["id"])["allowed"] is False


def test_contact_check_at_a_past_moment_sees_the_then_current_decision(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    created = make_customer()
    consent(client, created["id"], "granted", effective_at="2025-01-01T00:00:00Z")
    consent(client, created["id"], "withdrawn", effective_at="2025-06-01T00:00:00+03:00")

    before = can_contact(client, created["id"], at="2024-12-31T12:00:00Z")
    during = can_contact(client, created["id"], at="2025-03-01T12:00:00+02:00")
    after = can_contact(client, created["id"], at="2025-07-01T00:00:00Z")
    now = can_contact(client, created["id"])

    assert (before["allowed"], during["allowed"], after["allowed"]) == (False, True, False)
    assert "no consent" in before["reason"]
    assert "granted" in during["reason"]
    assert "withdrawn" in after["reason"]
    assert now["allowed"] is False


def test_no_offers_set_later_does_not_change_the_past_decision(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    created = make_customer()
    consent(client, created["id"], "granted", effective_at="2025-01-01T00:00:00Z")
    client.post(
        f"/v1/customers/{created['id']}/preferences",
        json={
            "name": "no_offers",
            "value": True,
            "source": "till",
            "effective_at": "2025-06-01T00:00:00Z",
        },
    )

    assert can_contact(client, created["id"], at="2025-03-01T00:00:00Z")["allowed"] is True
    assert can_contact(client, created["id"], at="2025-07-01T00:00:00Z")["allowed"] is False


def test_contact_check_of_a_merged_customer_follows_to_the_survivor(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    survivor = make_customer()
    absorbed = make_customer()
    consent(client, survivor["id"], "granted")
    client.post(
        "/v1/merges",
        json={"survivor_id": survivor["id"], "absorbed_id": absorbed["id"], "reason": "same"},
    )

    body = can_contact(client, absorbed["id"])

    assert body["allowed"] is True


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({"purpose": "spam", "channel": "email"}, ["purpose"]),
        ({"purpose": "marketing", "channel": "pigeon"}, ["channel"]),
        ({"purpose": "marketing", "channel": "all"}, ["channel"]),
        ({"channel": "email"}, ["query", "purpose"]),
        ({"purpose": "marketing"}, ["query", "channel"]),
        ({"purpose": "marketing", "channel": "email", "at": "2025-01-01T00:00:00"}, ["at"]),
        ({"purpose": "marketing", "channel": "email", "at": "someday"}, ["query", "at"]),
    ],
    ids=[
        "unknown-purpose",
        "unknown-channel",
        "all-channels",
        "no-purpose",
        "no-channel",
        "no-time-zone",
        "not-a-time",
    ],
)
def test_malformed_contact_check_is_422_naming_the_parameter(
    client: TestClient, make_customer: MakeCustomer, params: dict[str, str], loc: list[str]
) -> None:
    created = make_customer()

    response = client.get(f"/v1/customers/{created['id']}/can-contact", params=params)

    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == loc


def test_contact_check_of_unknown_customer_is_404(client: TestClient) -> None:
    response = client.get(
        "/v1/customers/999999/can-contact", params={"purpose": "marketing", "channel": "email"}
    )

    assert response.status_code == 404


# --- subject-access export ----------------------------------------------------------------


def test_export_holds_the_customers_identities_consents_and_timeline(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    created = make_customer(
        emails=["maija@example.fi"],
        phones=["040 123 4567"],
        identities=[{"kind": "card", "value": CARD}],
        addresses=[ADDRESS],
    )
    consent(client, created["id"], "granted", channel="all")
    prefer(client, created["id"], "no_offers", True)
    client.post(
        f"/v1/customers/{created['id']}/timeline",
        json={"channel": "store", "direction": "inbound", "summary": "Osti kengät"},
    )

    response = client.get(f"/v1/customers/{created['id']}/export")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["format"] == "oppiva.subject-access-export/1"
    assert body["customer_id"] == created["id"]
    assert body["exported_at"]
    (record,) = body["records"]
    assert record["customer_id"] == created["id"]
    assert record["customer"]["name"] == created["name"]
    assert {(i["kind"], i["display"]) for i in record["identities"]} == {
        ("email", "maija@example.fi"),
        ("phone", "+358401234567"),
        ("card", "card …1234"),
    }
    assert len(record["consents"]) == 5
    assert {c["channel"] for c in record["consents"]} == CHANNELS
    assert [e["summary"] for e in record["timeline"]] == ["Osti kengät"]
    assert [a["city"] for a in record["addresses"]] == ["Helsinki"]
    assert [(p["name"], p["value"]) for p in record["preferences"]] == [("no_offers", True)]
    assert "4111111111111234" not in response.text


def test_export_of_a_merged_person_holds_both_records(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    survivor = make_customer()
    absorbed = make_customer()
    client.post(
        "/v1/merges",
        json={"survivor_id": survivor["id"], "absorbed_id": absorbed["id"], "reason": "same"},
    )

    for asked in (survivor["id"], absorbed["id"]):
        body = client.get(f"/v1/customers/{asked}/export").json()
        assert body["customer_id"] == survivor["id"]
        assert {r["customer_id"] for r in body["records"]} == {survivor["id"], absorbed["id"]}


def test_export_of_unknown_customer_is_404(client: TestClient) -> None:
    assert client.get("/v1/customers/999999/export").status_code == 404


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/customers/{}/export"),
        ("DELETE", "/v1/customers/{}"),
    ],
    ids=["export", "erase"],
)
def test_customer_id_beyond_the_database_integer_range_is_404_not_500(
    tolerant_client: TestClient, method: str, path: str
) -> None:
    response = tolerant_client.request(method, path.format(2**31))

    assert response.status_code in (404, 422), response.text


# --- erasure ------------------------------------------------------------------------------


def test_erased_customer_is_gone_and_cannot_be_found(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    created = make_customer(
        name="Maija Meikäläinen", emails=["maija@example.fi"], phones=["040 123 4567"]
    )
    keep = make_customer()
    consent(client, created["id"], "granted")

    response = client.delete(f"/v1/customers/{created['id']}")

    assert response.status_code == 200, response.text
    assert response.json() == {"erased": [created["id"]]}
    assert client.get(f"/v1/customers/{created['id']}").status_code == 404
    assert found_ids(client, "maija@example.fi") == []
    assert found_ids(client, "0401234567") == []
    assert found_ids(client, "meikäläinen") == []
    assert [c["id"] for c in client.get("/v1/customers").json()] == [keep["id"]]
    identified = client.post(
        "/v1/identify", json={"identifiers": [{"kind": "email", "value": "maija@example.fi"}]}
    )
    assert identified.json() == {"customer": None}


def test_erased_customer_has_no_export_consents_or_contact(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    created = make_customer()
    consent(client, created["id"], "granted")
    client.delete(f"/v1/customers/{created['id']}")

    assert client.get(f"/v1/customers/{created['id']}/export").status_code == 404
    assert client.get(f"/v1/customers/{created['id']}/consents").status_code == 404
    assert client.get(f"/v1/customers/{created['id']}/timeline").status_code == 404
    contact = client.get(
        f"/v1/customers/{created['id']}/can-contact",
        params={"purpose": "marketing", "channel": "email"},
    )
    assert contact.status_code == 404


def test_erased_customers_email_can_be_registered_anew(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    created = make_customer(emails=["maija@example.fi"])
    client.delete(f"/v1/customers/{created['id']}")

    again = client.post("/v1/customers", json={"name": "Maija", "emails": ["maija@example.fi"]})

    assert again.status_code == 201, again.text
    assert again.json()["id"] != created["id"]
    assert found_ids(client, "maija@example.fi") == [again.json()["id"]]


def test_erased_person_is_no_longer_a_contact_person(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    org = make_customer(kind="organisation", name="Oy Yritys Ab", emails=[], phones=[])
    person = make_customer()
    client.post(
        f"/v1/customers/{org['id']}/contacts", json={"person_id": person["id"], "role": "x"}
    )

    client.delete(f"/v1/customers/{person['id']}")

    assert client.get(f"/v1/customers/{org['id']}/contacts").json() == []
    assert client.get(f"/v1/customers/{org['id']}").status_code == 200


def test_erasing_a_merged_person_erases_every_record_of_them(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    survivor = make_customer()
    absorbed = make_customer(emails=["old@example.fi"])
    client.post(
        "/v1/merges",
        json={"survivor_id": survivor["id"], "absorbed_id": absorbed["id"], "reason": "same"},
    )

    response = client.delete(f"/v1/customers/{survivor['id']}")

    assert response.status_code == 200
    assert sorted(response.json()["erased"]) == sorted([survivor["id"], absorbed["id"]])
    assert client.get(f"/v1/customers/{absorbed['id']}").status_code == 404
    assert found_ids(client, "old@example.fi") == []


def test_erasure_of_unknown_customer_is_404(client: TestClient) -> None:
    assert client.delete("/v1/customers/999999").status_code == 404


def test_erasing_twice_is_404_the_second_time(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    created = make_customer()

    first = client.delete(f"/v1/customers/{created['id']}")
    second = client.delete(f"/v1/customers/{created['id']}")

    assert first.status_code == 200
    assert second.status_code == 404
