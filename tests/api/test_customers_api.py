"""The customer register over HTTP: what a caller sends and what it gets back."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

MakeCustomer = Callable[..., dict[str, Any]]

CARD = "4111 1111 1111 1234"
CARD_DIGITS = "4111111111111234"


def count_customers(client: TestClient) -> int:
    response = client.get("/v1/customers", params={"limit": 1000})
    assert response.status_code == 200, response.text
    return len(response.json())


def found_ids(client: TestClient, q: str, **params: Any) -> list[int]:
    response = client.get("/v1/customers", params={"q": q, **params})
    assert response.status_code == 200, response.text
    return [c["id"] for c in response.json()]


def identities_of(body: dict[str, Any]) -> set[tuple[str, str]]:
    return {(i["kind"], i["display"]) for i in body["identities"]}


def instant(text: str) -> datetime:
    """The moment an ISO 8601 timestamp names, whatever offset it is written in."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def add_entry(client: TestClient, customer_id: int, **fields: Any) -> Any:
    data: dict[str, Any] = {"channel": "store", "direction": "inbound", "summary": "asked"}
    data.update(fields)
    response = client.post(f"/v1/customers/{customer_id}/timeline", json=data)
    assert response.status_code == 201, response.text
    return response.json()


# --- meta ---------------------------------------------------------------------------------


def test_health_reports_ok_with_the_database_kind(client: TestClient) -> None:
    response = client.get("/v1/health")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"] in ("sqlite", "postgresql")
    assert body["revision"]


def test_docs_and_openapi_are_served(client: TestClient) -> None:
    docs = client.get("/docs")
    schema = client.get("/openapi.json")

    assert docs.status_code == 200
    assert "text/html" in docs.headers["content-type"]
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/v1/customers" in paths
    assert "/v1/customers/{customer_id}/can-contact" in paths


# --- create and read ----------------------------------------------------------------------


def test_created_customer_is_201_with_normalised_email_and_phone(client: TestClient) -> None:
    response = client.post(
        "/v1/customers",
        json={
            "name": "Maija Meikäläinen",
            "emails": ["Maija@Example.FI"],
            "phones": ["040 123 4567"],
        },
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["name"] == "Maija Meikäläinen"
    assert body["kind"] == "person"
    assert body["status"] == "active"
    assert body["merged_into_id"] is None
    assert identities_of(body) == {("email", "maija@example.fi"), ("phone", "+358401234567")}
    assert all(i["is_primary"] for i in body["identities"])


def test_card_is_shown_only_by_its_last_digits_and_the_number_appears_nowhere(
    client: TestClient,
) -> None:
    response = client.post(
        "/v1/customers",
        json={"name": "Kortti Asiakas", "identities": [{"kind": "card", "value": CARD}]},
    )

    assert response.status_code == 201, response.text
    assert identities_of(response.json()) == {("card", "card …1234")}
    assert CARD_DIGITS not in response.text
    assert CARD not in response.text
    again = client.get(f"/v1/customers/{response.json()['id']}")
    assert CARD_DIGITS not in again.text
    assert CARD not in again.text


def test_customer_is_read_back_as_created(client: TestClient, make_customer: MakeCustomer) -> None:
    created = make_customer(
        name="Liisa Laine",
        given_name="Liisa",
        family_name="Laine",
        birthday="1980-02-29",
        language="sv",
        addresses=[{"street": "Mannerheimintie 1", "postal_code": "00100", "city": "Helsinki"}],
    )

    response = client.get(f"/v1/customers/{created['id']}")

    assert response.status_code == 200
    assert response.json() == created
    assert response.json()["addresses"][0]["city"] == "Helsinki"
    assert response.json()["language"] == "sv"


def test_unknown_customer_is_404(client: TestClient) -> None:
    response = client.get("/v1/customers/999999")

    assert response.status_code == 404
    assert "999999" in response.json()["detail"]


@pytest.mark.parametrize("customer_id", [2**31, 2**63], ids=["2^31", "2^63"])
def test_customer_id_beyond_the_database_integer_range_is_404_not_500(
    tolerant_client: TestClient, customer_id: int
) -> None:
    response = tolerant_client.get(f"/v1/customers/{customer_id}")

    assert response.status_code in (404, 422), response.text


def test_merge_naming_an_id_beyond_the_database_integer_range_is_404_not_500(
    tolerant_client: TestClient, make_customer: MakeCustomer
) -> None:
    created = make_customer()

    response = tolerant_client.post(
        "/v1/merges", json={"survivor_id": created["id"], "absorbed_id": 2**31, "reason": "x"}
    )

    assert response.status_code in (404, 422), response.text
    assert tolerant_client.get(f"/v1/customers/{created['id']}").json() == created


@pytest.mark.parametrize(
    "body",
    [
        {"name": "Maija\x00Meikäläinen"},
        {"name": "Maija", "given_name": "\x00"},
        {"name": "Maija", "identities": [{"kind": "login", "value": "maija\x00"}]},
        {"name": "Maija", "identities": [{"kind": "device", "value": "ios\x00abc"}]},
    ],
    ids=["name", "given-name", "login", "device"],
)
def test_nul_character_in_a_new_customer_is_refused_or_stored_never_a_500(
    tolerant_client: TestClient, body: dict[str, Any]
) -> None:
    response = tolerant_client.post("/v1/customers", json=body)

    assert response.status_code in (201, 422), response.text
    if response.status_code == 201:
        stored = tolerant_client.get(f"/v1/customers/{response.json()['id']}")
        assert stored.json() == response.json()
    else:
        assert count_customers(tolerant_client) == 0


def test_nul_character_in_an_identifier_to_identify_is_never_a_500(
    tolerant_client: TestClient,
) -> None:
    response = tolerant_client.post(
        "/v1/identify", json={"identifiers": [{"kind": "login", "value": "maija\x00"}]}
    )

    assert response.status_code in (200, 422), response.text
    if response.status_code == 200:
        assert response.json() == {"customer": None}


def test_organisation_is_created_with_its_business_id(client: TestClient) -> None:
    response = client.post(
        "/v1/customers",
        json={"kind": "organisation", "name": "Oy Yritys Ab", "business_id": "1234567-8"},
    )

    assert response.status_code == 201, response.text
    assert response.json()["kind"] == "organisation"
    assert response.json()["business_id"] == "1234567-8"


# --- search -------------------------------------------------------------------------------


def test_list_without_q_returns_every_active_customer_in_id_order(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    ids = [make_customer()["id"] for _ in range(3)]

    response = client.get("/v1/customers")

    assert response.status_code == 200
    assert [c["id"] for c in response.json()] == ids


def test_search_finds_by_email_in_any_case(client: TestClient, make_customer: MakeCustomer) -> None:
    maija = make_customer(emails=["maija@example.fi"])
    make_customer()

    assert found_ids(client, "MAIJA@example.FI") == [maija["id"]]


def test_search_finds_by_phone_written_another_way(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    maija = make_customer(phones=["040 123 4567"])
    make_customer()

    assert found_ids(client, "+358 40 123 4567") == [maija["id"]]
    assert found_ids(client, "0401234567") == [maija["id"]]


def test_search_finds_by_full_card_number(client: TestClient, make_customer: MakeCustomer) -> None:
    holder = make_customer(identities=[{"kind": "card", "value": CARD}])
    make_customer()

    assert found_ids(client, CARD_DIGITS) == [holder["id"]]


def test_search_finds_by_part_of_name_case_insensitively_with_finnish_letters(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    matti = make_customer(name="Matti Meikäläinen")
    make_customer(name="Maija Virtanen")

    assert found_ids(client, "meikä") == [matti["id"]]
    assert found_ids(client, "MEIKÄLÄ") == [matti["id"]]
    assert found_ids(client, "ti  meik") == [matti["id"]]


def test_search_finds_by_id(client: TestClient, make_customer: MakeCustomer) -> None:
    make_customer(name="Ensimmäinen")
    second = make_customer(name="Toinen")

    assert found_ids(client, str(second["id"])) == [second["id"]]


def test_search_without_match_is_an_empty_list(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    make_customer(name="Matti Meikäläinen")

    assert found_ids(client, "nobody-like-this") == []
    assert found_ids(client, "nobody@example.fi") == []


def test_limit_and_offset_page_through_the_customers(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    ids = [make_customer()["id"] for _ in range(5)]

    first = client.get("/v1/customers", params={"limit": 2})
    second = client.get("/v1/customers", params={"limit": 2, "offset": 2})
    rest = client.get("/v1/customers", params={"limit": 2, "offset": 4})
    beyond = client.get("/v1/customers", params={"offset": 5})

    assert [c["id"] for c in first.json()] == ids[:2]
    assert [c["id"] for c in second.json()] == ids[2:4]
    assert [c["id"] for c in rest.json()] == ids[4:]
    assert beyond.json() == []


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 1001}, {"limit": "many"}, {"offset": -1}],
    ids=["limit-0", "limit-1001", "limit-not-a-number", "negative-offset"],
)
def test_out_of_range_paging_is_422_naming_the_parameter(
    client: TestClient, params: dict[str, Any]
) -> None:
    response = client.get("/v1/customers", params=params)

    assert response.status_code == 422
    (name,) = params
    assert response.json()["detail"][0]["loc"] == ["query", name]


@pytest.mark.parametrize(
    "q",
    [
        "'; DROP TABLE customer; --",
        "' OR '1'='1",
        '" OR ""="',
        "%",
        "%%",
        "_",
        "\\",
        "\\%",
        "*",
        "Testi%Asiakas",
        "Testi_Asiakas",
        "1 OR 1=1",
        "1; SELECT 1",
    ],
)
def test_sql_metacharacters_in_q_match_nothing_and_break_nothing(
    tolerant_client: TestClient, make_customer: MakeCustomer, q: str
) -> None:
    make_customer(name="Testi Asiakas")
    make_customer(name="Toinen Asiakas")

    response = tolerant_client.get("/v1/customers", params={"q": q})

    assert response.status_code != 500
    if response.status_code == 200:
        assert response.json() == []
    else:
        assert 400 <= response.status_code < 500
    assert count_customers(tolerant_client) == 2


@pytest.mark.parametrize("q", ["\x00", "Testi\x00", "\x00Asiakas"])
def test_nul_character_in_q_matches_nothing_and_is_not_a_500(
    tolerant_client: TestClient, make_customer: MakeCustomer, q: str
) -> None:
    make_customer(name="Testi Asiakas")

    response = tolerant_client.get("/v1/customers", params={"q": q})

    assert response.status_code != 500
    if response.status_code == 200:
        assert response.json() == []
    else:
        assert 400 <= response.status_code < 500


def test_name_with_sql_metacharacters_is_stored_and_found_literally(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    bobby = make_customer(name="Robert'); DROP TABLE customer;-- 100% _x_")
    make_customer()

    assert found_ids(client, "'); drop table") == [bobby["id"]]
    assert found_ids(client, "100% _x_") == [bobby["id"]]
    assert client.get(f"/v1/customers/{bobby['id']}").json()["name"] == bobby["name"]


def test_ten_kilobyte_q_is_a_clean_4xx(
    tolerant_client: TestClient, make_customer: MakeCustomer
) -> None:
    make_customer()

    response = tolerant_client.get("/v1/customers", params={"q": "a" * 10_240})

    assert 400 <= response.status_code < 500
    assert response.json()["detail"][0]["loc"] == ["query", "q"]


@pytest.mark.parametrize("digits", [19, 20, 40, 320])
def test_long_all_digit_q_is_an_empty_result_not_a_500(
    tolerant_client: TestClient, make_customer: MakeCustomer, digits: int
) -> None:
    make_customer()

    response = tolerant_client.get("/v1/customers", params={"q": "9" * digits})

    assert response.status_code == 200, response.text
    assert response.json() == []


# --- invalid input writes nothing ---------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"emails": ["not-an-email"]}, "emails[0]"),
        ({"emails": ["ok@example.fi", "two@@example.fi"]}, "emails[1]"),
        ({"phones": ["12"]}, "phones[0]"),
        ({"phones": ["not a phone"]}, "phones[0]"),
        ({"identities": [{"kind": "email", "value": "nope"}]}, "identities[0].value"),
        ({"identities": [{"kind": "card", "value": "12ab"}]}, "identities[0].value"),
        ({"identities": [{"kind": "shoe-size", "value": "42"}]}, "identities[0].kind"),
        ({"identities": [{"kind": "external", "value": "no-colon"}]}, "identities[0].value"),
    ],
    ids=[
        "email",
        "second-email",
        "short-phone",
        "words-as-phone",
        "email-identity",
        "card-with-letters",
        "unknown-kind",
        "external-without-system",
    ],
)
def test_invalid_identifier_is_422_naming_the_field_and_writes_nothing(
    client: TestClient, make_customer: MakeCustomer, body: dict[str, Any], field: str
) -> None:
    make_customer()
    before = count_customers(client)
    data = {
        "name": "Ei Tallennu",
        "emails": ["valid@example.fi"],
        "phones": ["040 765 4321"],
        "identities": [{"kind": "login", "value": "eitallennu"}],
        **body,
    }

    response = client.post("/v1/customers", json=data)

    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == [field]
    assert error["msg"]
    assert error["type"] == "invalid_input"
    assert count_customers(client) == before
    for q in ("valid@example.fi", "ok@example.fi", "040 765 4321", "eitallennu", "Ei Tallennu"):
        assert found_ids(client, q) == [], q


def test_the_same_identifier_twice_in_one_request_is_422_and_writes_nothing(
    client: TestClient,
) -> None:
    response = client.post(
        "/v1/customers",
        json={"name": "Tupla", "emails": ["a@example.fi", "A@EXAMPLE.fi"]},
    )

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["emails[1]"]
    assert count_customers(client) == 0


def test_identifier_of_another_customer_is_409_naming_that_customer_and_writes_nothing(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    owner = make_customer(emails=["maija@example.fi"], phones=["040 123 4567"])
    before = count_customers(client)

    response = client.post(
        "/v1/customers",
        json={"name": "Toinen", "emails": ["new@example.fi", "MAIJA@example.fi"]},
    )

    assert response.status_code == 409, response.text
    assert response.json()["customer_id"] == owner["id"]
    assert "maija@example.fi" in response.json()["detail"]
    assert count_customers(client) == before
    assert found_ids(client, "new@example.fi") == []


def test_phone_of_another_customer_in_another_spelling_is_409(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    owner = make_customer(phones=["040 123 4567"])

    response = client.post("/v1/customers", json={"name": "Toinen", "phones": ["+358401234567"]})

    assert response.status_code == 409
    assert response.json()["customer_id"] == owner["id"]


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({}, ["body", "name"]),
        ({"name": ""}, ["body", "name"]),
        ({"name": "x" * 201}, ["body", "name"]),
        ({"name": "Ok", "kind": "robot"}, ["body", "kind"]),
        ({"name": "Ok", "language": "de"}, ["body", "language"]),
        ({"name": "Ok", "birthday": "31.12.1980"}, ["body", "birthday"]),
        ({"name": "Ok", "emails": "a@example.fi"}, ["body", "emails"]),
        ({"name": "Ok", "emails": [f"a{i}@example.fi" for i in range(21)]}, ["body", "emails"]),
    ],
    ids=[
        "missing-name",
        "empty-name",
        "name-too-long",
        "unknown-kind",
        "unknown-language",
        "finnish-date",
        "emails-not-a-list",
        "too-many-emails",
    ],
)
def test_malformed_body_is_422_naming_the_field_and_writes_nothing(
    client: TestClient, body: dict[str, Any], loc: list[str]
) -> None:
    response = client.post("/v1/customers", json=body)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == loc
    assert count_customers(client) == 0


def test_body_that_is_not_json_is_422(client: TestClient) -> None:
    response = client.post(
        "/v1/customers", content=b"name=Maija", headers={"content-type": "application/json"}
    )

    assert response.status_code == 422
    assert count_customers(client) == 0


# --- rectification ------------------------------------------------------------------------


def test_patch_changes_only_the_fields_given(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    created = make_customer(
        name="Maija Meikäläinen",
        given_name="Maija",
        family_name="Meikäläinen",
        birthday="1980-01-01",
        addresses=[{"street": "Katu 1", "postal_code": "00100", "city": "Helsinki"}],
    )

    response = client.patch(
        f"/v1/customers/{created['id']}", json={"family_name": "Virtanen", "language": "en"}
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["family_name"] == "Virtanen"
    assert body["language"] == "en"
    for field, value in created.items():
        if field not in ("family_name", "language", "updated_at"):
            assert body[field] == value, field
    assert client.get(f"/v1/customers/{created['id']}").json() == body


def test_patch_renames_and_the_new_name_is_searchable(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    created = make_customer(name="Maija Meikäläinen")

    response = client.patch(f"/v1/customers/{created['id']}", json={"name": "Maija Virtanen"})

    assert response.status_code == 200
    assert response.json()["name"] == "Maija Virtanen"
    assert found_ids(client, "virtanen") == [created["id"]]
    assert found_ids(client, "meikäläinen") == []


def test_patch_with_addresses_replaces_all_of_them(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    created = make_customer(
        addresses=[
            {"street": "Katu 1", "postal_code": "00100", "city": "Helsinki"},
            {"kind": "work", "street": "Tie 2", "postal_code": "33100", "city": "Tampere"},
        ]
    )

    response = client.patch(
        f"/v1/customers/{created['id']}",
        json={"addresses": [{"street": "Gatan 3", "postal_code": "65100", "city": "Vaasa"}]},
    )

    assert response.status_code == 200, response.text
    addresses = client.get(f"/v1/customers/{created['id']}").json()["addresses"]
    assert [(a["street"], a["city"]) for a in addresses] == [("Gatan 3", "Vaasa")]


def test_patch_with_empty_addresses_removes_them(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    created = make_customer(
        addresses=[{"street": "Katu 1", "postal_code": "00100", "city": "Helsinki"}]
    )

    response = client.patch(f"/v1/customers/{created['id']}", json={"addresses": []})

    assert response.status_code == 200
    assert client.get(f"/v1/customers/{created['id']}").json()["addresses"] == []


def test_patch_without_addresses_keeps_them(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    created = make_customer(
        addresses=[{"street": "Katu 1", "postal_code": "00100", "city": "Helsinki"}]
    )

    client.patch(f"/v1/customers/{created['id']}", json={"given_name": "Maija"})

    assert client.get(f"/v1/customers/{created['id']}").json()["addresses"] == created["addresses"]


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"name": None}, "name"),
        ({"name": ""}, "name"),
        ({"emails": ["x@example.fi"]}, "emails"),
        ({"relationship_start": None}, "relationship_start"),
    ],
    ids=["null-name", "empty-name", "unknown-field", "null-relationship-start"],
)
def test_invalid_patch_is_422_and_changes_nothing(
    client: TestClient, make_customer: MakeCustomer, body: dict[str, Any], loc: str
) -> None:
    created = make_customer()

    response = client.patch(f"/v1/customers/{created['id']}", json=body)

    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"][-1] == loc
    assert client.get(f"/v1/customers/{created['id']}").json() == created


def test_patch_of_unknown_customer_is_404(client: TestClient) -> None:
    response = client.patch("/v1/customers/999999", json={"name": "Ketään"})

    assert response.status_code == 404


# --- identities ---------------------------------------------------------------------------


def test_added_identity_is_201_normalised_and_finds_the_customer(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    created = make_customer()

    response = client.post(
        f"/v1/customers/{created['id']}/identities",
        json={"kind": "email", "value": "Work@Example.FI", "label": "work"},
    )

    assert response.status_code == 201, response.text
    assert response.json()["display"] == "work@example.fi"
    assert response.json()["label"] == "work"
    assert found_ids(client, "work@example.fi") == [created["id"]]
    after = client.get(f"/v1/customers/{created['id']}").json()
    assert ("email", "work@example.fi") in identities_of(after)


def test_added_card_identity_does_not_echo_the_number(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    created = make_customer()

    response = client.post(
        f"/v1/customers/{created['id']}/identities", json={"kind": "card", "value": CARD}
    )

    assert response.status_code == 201
    assert response.json()["display"] == "card …1234"
    assert CARD_DIGITS not in response.text


def test_adding_an_identity_the_customer_already_has_is_idempotent(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    created = make_customer(emails=["maija@example.fi"])
    (existing,) = [i for i in created["identities"] if i["kind"] == "email"]

    response = client.post(
        f"/v1/customers/{created['id']}/identities",
        json={"kind": "email", "value": "MAIJA@example.fi"},
    )

    assert response.status_code in (200, 201)
    assert response.json()["id"] == existing["id"]
    assert (
        client.get(f"/v1/customers/{created['id']}").json()["identities"] == created["identities"]
    )


def test_adding_an_identity_of_another_customer_is_409_naming_that_customer(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    owner = make_customer(phones=["040 123 4567"])
    other = make_customer()

    response = client.post(
        f"/v1/customers/{other['id']}/identities", json={"kind": "phone", "value": "0401234567"}
    )

    assert response.status_code == 409
    assert response.json()["customer_id"] == owner["id"]
    assert client.get(f"/v1/customers/{other['id']}").json() == other
    assert found_ids(client, "0401234567") == [owner["id"]]


def test_adding_a_malformed_identity_is_422_naming_the_value(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    created = make_customer()

    response = client.post(
        f"/v1/customers/{created['id']}/identities", json={"kind": "email", "value": "nope"}
    )

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["value"]
    assert client.get(f"/v1/customers/{created['id']}").json() == created


def test_adding_an_identity_to_an_unknown_customer_is_404(client: TestClient) -> None:
    response = client.post(
        "/v1/customers/999999/identities", json={"kind": "email", "value": "a@example.fi"}
    )

    assert response.status_code == 404
    assert found_ids(client, "a@example.fi") == []


def test_deleted_identity_is_204_and_no_longer_finds_the_customer(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    created = make_customer(emails=["maija@example.fi"])
    (email,) = [i for i in created["identities"] if i["kind"] == "email"]

    response = client.delete(f"/v1/customers/{created['id']}/identities/{email['id']}")

    assert response.status_code == 204
    assert response.content == b""
    after = client.get(f"/v1/customers/{created['id']}").json()
    assert email["id"] not in [i["id"] for i in after["identities"]]
    assert found_ids(client, "maija@example.fi") == []


def test_deleted_identity_can_be_given_to_another_customer(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    first = make_customer(emails=["shared@example.fi"])
    second = make_customer()
    (email,) = [i for i in first["identities"] if i["kind"] == "email"]
    client.delete(f"/v1/customers/{first['id']}/identities/{email['id']}")

    response = client.post(
        f"/v1/customers/{second['id']}/identities",
        json={"kind": "email", "value": "shared@example.fi"},
    )

    assert response.status_code == 201
    assert found_ids(client, "shared@example.fi") == [second["id"]]


def test_deleting_an_identity_of_another_customer_is_404_and_keeps_it(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    owner = make_customer(emails=["maija@example.fi"])
    other = make_customer()
    (email,) = [i for i in owner["identities"] if i["kind"] == "email"]

    response = client.delete(f"/v1/customers/{other['id']}/identities/{email['id']}")

    assert response.status_code == 404
    assert found_ids(client, "maija@example.fi") == [owner["id"]]


def test_deleting_an_identity_twice_is_404_the_second_time(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    created = make_customer()
    identity_id = created["identities"][0]["id"]

    first = client.delete(f"/v1/customers/{created['id']}/identities/{identity_id}")
    second = client.delete(f"/v1/customers/{created['id']}/identities/{identity_id}")

    assert first.status_code == 204
    assert second.status_code == 404


# --- identify -----------------------------------------------------------------------------


def test_identify_returns_the_customer_an_identifier_points_to(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    maija = make_customer(phones=["040 123 4567"])
    make_customer()

    response = client.post(
        "/v1/identify", json={"identifiers": [{"kind": "phone", "value": "+358 40 1234567"}]}
    )

    assert response.status_code == 200
    assert response.json()["customer"] == client.get(f"/v1/customers/{maija['id']}").json()


def test_identify_by_card_and_unknown_email_returns_the_card_holder(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    holder = make_customer(identities=[{"kind": "card", "value": CARD}])

    response = client.post(
        "/v1/identify",
        json={
            "identifiers": [
                {"kind": "email", "value": "unknown@example.fi"},
                {"kind": "card", "value": CARD_DIGITS},
            ]
        },
    )

    assert response.status_code == 200
    assert response.json()["customer"]["id"] == holder["id"]


def test_identify_without_a_match_returns_null_customer(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    make_customer()

    response = client.post(
        "/v1/identify", json={"identifiers": [{"kind": "email", "value": "nobody@example.fi"}]}
    )

    assert response.status_code == 200
    assert response.json() == {"customer": None}


def test_identify_with_identifiers_of_two_customers_is_409(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    maija = make_customer(emails=["maija@example.fi"])
    matti = make_customer(phones=["040 123 4567"])

    response = client.post(
        "/v1/identify",
        json={
            "identifiers": [
                {"kind": "email", "value": "maija@example.fi"},
                {"kind": "phone", "value": "0401234567"},
            ]
        },
    )

    assert response.status_code == 409
    detail = response.json()["detail"]
    assert str(maija["id"]) in detail
    assert str(matti["id"]) in detail


def test_identify_with_a_malformed_identifier_is_422_naming_it(client: TestClient) -> None:
    response = client.post(
        "/v1/identify",
        json={
            "identifiers": [
                {"kind": "email", "value": "ok@example.fi"},
                {"kind": "phone", "value": "not a phone"},
            ]
        },
    )

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["identifiers[1].value"]


def test_identify_with_no_identifiers_is_422(client: TestClient) -> None:
    response = client.post("/v1/identify", json={"identifiers": []})

    assert response.status_code == 422


# --- timeline -----------------------------------------------------------------------------


def test_timeline_entry_is_recorded_and_read_back(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    created = make_customer()

    response = client.post(
        f"/v1/customers/{created['id']}/timeline",
        json={
            "channel": "phone",
            "direction": "inbound",
            "summary": "Kysyi tarjouksesta",
            "occurred_at": "2026-05-01T10:00:00+03:00",
            "staff": "Pekka",
        },
    )

    assert response.status_code == 201, response.text
    assert response.json()["recorded"] is True
    entry = response.json()["entry"]
    assert entry["customer_id"] == created["id"]
    assert entry["summary"] == "Kysyi tarjouksesta"
    assert instant(entry["occurred_at"]) == instant("2026-05-01T07:00:00Z")
    (stored,) = client.get(f"/v1/customers/{created['id']}/timeline").json()
    for field in ("occurred_at", "created_at"):
        assert instant(stored.pop(field)) == instant(entry.pop(field))
    assert stored == entry


def test_timeline_is_newest_first(client: TestClient, make_customer: MakeCustomer) -> None:
    created = make_customer()
    for summary, when in [
        ("middle", "2026-03-01T12:00:00+02:00"),
        ("oldest", "2026-01-01T12:00:00+02:00"),
        ("newest", "2026-05-01T12:00:00+03:00"),
    ]:
        add_entry(client, created["id"], summary=summary, occurred_at=when)

    response = client.get(f"/v1/customers/{created['id']}/timeline")

    assert response.status_code == 200
    assert [e["summary"] for e in response.json()] == ["newest", "middle", "oldest"]


def test_timeline_pages_with_limit_and_offset(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    created = make_customer()
    for day in range(1, 6):
        add_entry(
            client, created["id"], summary=f"day {day}", occurred_at=f"2026-01-0{day}T12:00:00Z"
        )

    page = client.get(f"/v1/customers/{created['id']}/timeline", params={"limit": 2, "offset": 1})

    assert [e["summary"] for e in page.json()] == ["day 4", "day 3"]


def test_timeline_entry_without_time_zone_is_422(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    created = make_customer()

    response = client.post(
        f"/v1/customers/{created['id']}/timeline",
        json={
            "channel": "store",
            "direction": "inbound",
            "summary": "x",
            "occurred_at": "2026-05-01T10:00:00",
        },
    )

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["occurred_at"]
    assert client.get(f"/v1/customers/{created['id']}/timeline").json() == []


def test_timeline_entry_with_unknown_channel_is_422(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    created = make_customer()

    response = client.post(
        f"/v1/customers/{created['id']}/timeline",
        json={"channel": "pigeon", "direction": "inbound", "summary": "x"},
    )

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "channel"]


def test_timeline_of_unknown_customer_is_404(client: TestClient) -> None:
    assert client.get("/v1/customers/999999/timeline").status_code == 404
    response = client.post(
        "/v1/customers/999999/timeline",
        json={"channel": "store", "direction": "inbound", "summary": "x"},
    )
    assert response.status_code == 404


def test_customer_who_asked_not_to_be_remembered_gets_nothing_recorded(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    created = make_customer()
    preference = client.post(
        f"/v1/customers/{created['id']}/preferences",
        json={"name": "remember_me", "value": False, "source": "web form"},
    )
    assert preference.status_code == 200, preference.text
    assert preference.json()["remember_me"] is False

    response = client.post(
        f"/v1/customers/{created['id']}/timeline",
        json={"channel": "store", "direction": "inbound", "summary": "bought shoes"},
    )

    assert response.status_code == 201
    assert response.json()["recorded"] is False
    assert response.json()["entry"] is None
    assert response.json()["reason"]
    assert client.get(f"/v1/customers/{created['id']}/timeline").json() == []


def test_customer_who_asked_not_to_be_remembered_still_gets_what_law_requires(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    created = make_customer()
    client.post(
        f"/v1/customers/{created['id']}/preferences",
        json={"name": "remember_me", "value": False, "source": "web form"},
    )

    response = client.post(
        f"/v1/customers/{created['id']}/timeline",
        json={
            "channel": "store",
            "direction": "outbound",
            "summary": "receipt",
            "required_by_law": True,
        },
    )

    assert response.status_code == 201
    assert response.json()["recorded"] is True
    timeline = client.get(f"/v1/customers/{created['id']}/timeline").json()
    assert [(e["summary"], e["required_by_law"]) for e in timeline] == [("receipt", True)]


def test_turning_remember_me_off_forgets_the_optional_timeline_but_keeps_the_legal_one(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    created = make_customer()
    add_entry(client, created["id"], summary="chat")
    add_entry(client, created["id"], summary="invoice", required_by_law=True)

    client.post(
        f"/v1/customers/{created['id']}/preferences",
        json={"name": "remember_me", "value": False, "source": "till"},
    )

    timeline = client.get(f"/v1/customers/{created['id']}/timeline").json()
    assert [e["summary"] for e in timeline] == ["invoice"]


def test_turning_remember_me_back_on_records_again(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    created = make_customer()
    for value in (False, True):
        client.post(
            f"/v1/customers/{created['id']}/preferences",
            json={"name": "remember_me", "value": value, "source": "till"},
        )

    body = add_entry(client, created["id"], summary="welcome back")

    assert body["recorded"] is True


# --- contact persons ----------------------------------------------------------------------


def test_organisation_gets_contact_persons_listed_in_order(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    org = make_customer(kind="organisation", name="Oy Yritys Ab", emails=[], phones=[])
    buyer = make_customer(name="Ostaja")
    ceo = make_customer(name="Toimitusjohtaja")

    first = client.post(
        f"/v1/customers/{org['id']}/contacts",
        json={"person_id": buyer["id"], "role": " buyer ", "since": "2024-01-01"},
    )
    second = client.post(
        f"/v1/customers/{org['id']}/contacts", json={"person_id": ceo["id"], "role": "CEO"}
    )

    assert first.status_code == 201, first.text
    assert second.status_code == 201, second.text
    assert first.json()["organisation_id"] == org["id"]
    assert first.json()["role"] == "buyer"
    listed = client.get(f"/v1/customers/{org['id']}/contacts")
    assert listed.status_code == 200
    assert [(c["person_id"], c["role"], c["since"]) for c in listed.json()] == [
        (buyer["id"], "buyer", "2024-01-01"),
        (ceo["id"], "CEO", None),
    ]


def test_organisation_without_contact_persons_lists_none(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    org = make_customer(kind="organisation", name="Oy Tyhjä Ab", emails=[], phones=[])

    assert client.get(f"/v1/customers/{org['id']}/contacts").json() == []


def test_a_person_cannot_have_contact_persons(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    person = make_customer()
    other = make_customer()

    response = client.post(
        f"/v1/customers/{person['id']}/contacts", json={"person_id": other["id"], "role": "buyer"}
    )

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["organisation_id"]
    assert client.get(f"/v1/customers/{person['id']}/contacts").json() == []


def test_an_organisation_cannot_be_a_contact_person(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    org = make_customer(kind="organisation", name="Oy A Ab", emails=[], phones=[])
    other_org = make_customer(kind="organisation", name="Oy B Ab", emails=[], phones=[])

    response = client.post(
        f"/v1/customers/{org['id']}/contacts", json={"person_id": other_org["id"], "role": "x"}
    )

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["person_id"]


def test_contact_person_who_does_not_exist_is_404(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    org = make_customer(kind="organisation", name="Oy A Ab", emails=[], phones=[])

    response = client.post(
        f"/v1/customers/{org['id']}/contacts", json={"person_id": 999999, "role": "buyer"}
    )

    assert response.status_code == 404
    assert client.get(f"/v1/customers/{org['id']}/contacts").json() == []


def test_contact_persons_of_unknown_organisation_is_404(client: TestClient) -> None:
    assert client.get("/v1/customers/999999/contacts").status_code == 404


# --- merge and unmerge --------------------------------------------------------------------


def snapshot(client: TestClient, *ids: int) -> dict[int, tuple[Any, Any]]:
    """What a caller sees of each customer: its record and its timeline."""
    out = {}
    for cid in ids:
        record = client.get(f"/v1/customers/{cid}")
        timeline = client.get(f"/v1/customers/{cid}/timeline")
        assert record.status_code == 200, record.text
        assert timeline.status_code == 200, timeline.text
        out[cid] = (record.json(), timeline.json())
    return out


def merge(client: TestClient, survivor: int, absorbed: int) -> Any:
    response = client.post(
        "/v1/merges",
        json={"survivor_id": survivor, "absorbed_id": absorbed, "reason": "same person"},
    )
    assert response.status_code == 201, response.text
    return response.json()


def test_merge_moves_identities_and_timeline_to_the_survivor(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    survivor = make_customer(name="Maija Meikäläinen", emails=["maija@example.fi"])
    absorbed = make_customer(name="M. Meikäläinen", emails=["mm@example.fi"])
    add_entry(client, survivor["id"], summary="survivor's", occurred_at="2026-01-01T10:00:00Z")
    add_entry(client, absorbed["id"], summary="absorbed's", occurred_at="2026-02-01T10:00:00Z")

    response = client.post(
        "/v1/merges",
        json={"survivor_id": survivor["id"], "absorbed_id": absorbed["id"], "reason": "same"},
    )

    assert response.status_code == 201, response.text
    record = response.json()
    assert (record["survivor_id"], record["absorbed_id"]) == (survivor["id"], absorbed["id"])
    assert record["merged_by"].startswith("key:")
    assert record["unmerged_at"] is None
    after = client.get(f"/v1/customers/{survivor['id']}").json()
    assert identities_of(absorbed) | identities_of(survivor) == identities_of(after)
    timeline = client.get(f"/v1/customers/{survivor['id']}/timeline").json()
    assert [e["summary"] for e in timeline] == ["absorbed's", "survivor's"]
    gone = client.get(f"/v1/customers/{absorbed['id']}").json()
    assert gone["status"] == "merged"
    assert gone["merged_into_id"] == survivor["id"]
    assert gone["identities"] == []
    assert client.get(f"/v1/customers/{absorbed['id']}/timeline").json() == []


def test_merged_customer_is_found_through_the_survivor(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    survivor = make_customer()
    absorbed = make_customer(emails=["old@example.fi"])
    merge(client, survivor["id"], absorbed["id"])

    assert found_ids(client, "old@example.fi") == [survivor["id"]]
    identified = client.post(
        "/v1/identify", json={"identifiers": [{"kind": "email", "value": "old@example.fi"}]}
    )
    assert identified.json()["customer"]["id"] == survivor["id"]
    assert absorbed["id"] not in [c["id"] for c in client.get("/v1/customers").json()]


def test_merge_fills_empty_fields_of_the_survivor(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    survivor = make_customer(given_name="Maija")
    absorbed = make_customer(family_name="Meikäläinen", birthday="1980-01-01")

    merge(client, survivor["id"], absorbed["id"])

    after = client.get(f"/v1/customers/{survivor['id']}").json()
    assert after["given_name"] == "Maija"
    assert after["family_name"] == "Meikäläinen"
    assert after["birthday"] == "1980-01-01"


def test_merge_is_listed_on_both_customers(client: TestClient, make_customer: MakeCustomer) -> None:
    survivor = make_customer()
    absorbed = make_customer()
    record = merge(client, survivor["id"], absorbed["id"])

    for cid in (survivor["id"], absorbed["id"]):
        response = client.get(f"/v1/customers/{cid}/merges")
        assert response.status_code == 200
        assert [m["id"] for m in response.json()] == [record["id"]]


def test_unmerge_restores_both_customers_exactly(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    survivor = make_customer(
        name="Maija Meikäläinen",
        given_name="Maija",
        relationship_start="2020-01-01",
        addresses=[{"street": "Katu 1", "postal_code": "00100", "city": "Helsinki"}],
    )
    absorbed = make_customer(
        name="M. Meikäläinen",
        family_name="Meikäläinen",
        birthday="1980-01-01",
        relationship_start="2015-06-01",
        identities=[{"kind": "card", "value": CARD}],
        addresses=[{"street": "Tie 2", "postal_code": "33100", "city": "Tampere"}],
    )
    add_entry(client, survivor["id"], summary="one", occurred_at="2026-01-01T10:00:00Z")
    add_entry(client, absorbed["id"], summary="two", occurred_at="2026-02-01T10:00:00Z")
    add_entry(client, absorbed["id"], summary="three", occurred_at="2026-03-01T10:00:00Z")
    before = snapshot(client, survivor["id"], absorbed["id"])
    merge(client, survivor["id"], absorbed["id"])
    merged = client.get(f"/v1/customers/{survivor['id']}").json()
    assert merged["relationship_start"] == "2015-06-01"
    assert merged["birthday"] == "1980-01-01"

    response = client.post(
        f"/v1/customers/{absorbed['id']}/unmerge", json={"reason": "two people after all"}
    )

    assert response.status_code == 200, response.text
    assert response.json()["unmerged_at"] is not None
    assert response.json()["unmerge_reason"] == "two people after all"
    assert response.json()["unmerged_by"].startswith("key:")
    assert snapshot(client, survivor["id"], absorbed["id"]) == before
    assert found_ids(client, CARD_DIGITS) == [absorbed["id"]]


def test_unmerge_restores_consents_and_contacts_of_the_absorbed(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    survivor = make_customer()
    absorbed = make_customer()
    client.post(
        f"/v1/customers/{absorbed['id']}/consents",
        json={"purpose": "marketing", "channel": "email", "status": "granted", "source": "web"},
    )
    before = client.get(f"/v1/customers/{absorbed['id']}/consents").json()
    merge(client, survivor["id"], absorbed["id"])
    assert len(client.get(f"/v1/customers/{survivor['id']}/consents").json()["history"]) == 1

    client.post(f"/v1/customers/{absorbed['id']}/unmerge", json={"reason": "two people"})

    assert client.get(f"/v1/customers/{absorbed['id']}/consents").json() == before
    assert client.get(f"/v1/customers/{survivor['id']}/consents").json()["history"] == []


def test_merging_a_customer_with_itself_is_422(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    created = make_customer()

    response = client.post(
        "/v1/merges",
        json={"survivor_id": created["id"], "absorbed_id": created["id"], "reason": "oops"},
    )

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["absorbed_id"]
    assert client.get(f"/v1/customers/{created['id']}").json() == created


def test_merging_a_person_into_an_organisation_is_422(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    org = make_customer(kind="organisation", name="Oy A Ab", emails=[], phones=[])
    person = make_customer()

    response = client.post(
        "/v1/merges", json={"survivor_id": org["id"], "absorbed_id": person["id"], "reason": "x"}
    )

    assert response.status_code == 422
    assert client.get(f"/v1/customers/{person['id']}").json()["status"] == "active"


def test_merging_an_already_merged_customer_is_409_naming_where_it_went(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    first = make_customer()
    second = make_customer()
    third = make_customer()
    merge(client, first["id"], second["id"])

    response = client.post(
        "/v1/merges", json={"survivor_id": third["id"], "absorbed_id": second["id"], "reason": "x"}
    )

    assert response.status_code == 409
    assert response.json()["customer_id"] == first["id"]


def test_merge_with_unknown_customer_is_404(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    created = make_customer()

    response = client.post(
        "/v1/merges", json={"survivor_id": created["id"], "absorbed_id": 999999, "reason": "x"}
    )

    assert response.status_code == 404


def test_merge_without_reason_is_422(client: TestClient, make_customer: MakeCustomer) -> None:
    a = make_customer()
    b = make_customer()

    response = client.post("/v1/merges", json={"survivor_id": a["id"], "absorbed_id": b["id"]})

    assert response.status_code == 422
    assert client.get(f"/v1/customers/{b['id']}").json()["status"] == "active"


def test_unmerge_of_a_customer_that_is_not_merged_is_404(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    created = make_customer()

    response = client.post(f"/v1/customers/{created['id']}/unmerge", json={"reason": "x"})

    assert response.status_code == 404
    assert client.get(f"/v1/customers/{created['id']}").json() == created


def test_unmerge_of_unknown_customer_is_404(client: TestClient) -> None:
    response = client.post("/v1/customers/999999/unmerge", json={"reason": "x"})

    assert response.status_code == 404


def test_unmerge_twice_is_404_the_second_time(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    survivor = make_customer()
    absorbed = make_customer()
    merge(client, survivor["id"], absorbed["id"])

    first = client.post(f"/v1/customers/{absorbed['id']}/unmerge", json={"reason": "x"})
    second = client.post(f"/v1/customers/{absorbed['id']}/unmerge", json={"reason": "x"})

    assert first.status_code == 200
    assert second.status_code == 404


def test_merged_customer_cannot_be_rectified_or_given_identities(
    client: TestClient, make_customer: MakeCustomer
) -> None:
    survivor = make_customer()
    absorbed = make_customer()
    merge(client, survivor["id"], absorbed["id"])

    patched = client.patch(f"/v1/customers/{absorbed['id']}", json={"name": "Uusi"})
    added = client.post(
        f"/v1/customers/{absorbed['id']}/identities",
        json={"kind": "email", "value": "late@example.fi"},
    )

    assert patched.status_code == 409
    assert patched.json()["customer_id"] == survivor["id"]
    assert added.status_code == 409
    assert found_ids(client, "late@example.fi") == []
