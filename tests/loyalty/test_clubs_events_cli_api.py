"""`oppiva loyalty clubs|events ...` and `/v1/loyalty/clubs|events`: the whole flow, the bad
input each refuses, the permissions and the audit log; on both databases."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from oppiva.access.models import AuditEntry
from oppiva.api.app import create_app
from oppiva.db import Store
from tests.cli.conftest import Cli, error_line
from tests.conftest import make_key
from tests.factories import make_customer
from tests.loyalty.test_clubs import NOW, buy, consent, shop

CLUBS = {
    "clubs": [
        {
            "key": "baby",
            "name": "Baby & Toddler",
            "suggest": {"attributes": {"audience": "baby"}, "min_purchases": 1},
        }
    ]
}
STARTS = (NOW + timedelta(days=10)).isoformat()


@pytest.fixture
def cli(db: Store) -> Cli:
    return Cli(db.url)


@pytest.fixture
def people(db: Store) -> dict[str, int]:
    """`baby` bought baby food at Kamppi (50 EUR), `big` wine (300 EUR); both consent to
    marketing by email."""
    with db.transaction() as session:
        shop(session)
        baby, big = make_customer(session), make_customer(session)
        buy(session, baby, "PUREE", price="50.00")
        buy(session, big, "WINE", price="300.00")
        for person in (baby, big):
            consent(session, person.id)
        return {"baby": baby.id, "big": big.id}


def test_clubs_from_the_command_line(cli, people, tmp_path):
    file = tmp_path / "clubs.json"
    file.write_text(json.dumps(CLUBS))
    assert "Clubs set: baby." in cli.ok("loyalty", "clubs", "set", str(file)).stdout
    (listed,) = cli.json("loyalty", "clubs", "list")
    assert (listed["key"], listed["members"], listed["suggest"]["attributes"]) == (
        "baby",
        0,
        {"audience": "baby"},
    )
    suggested = cli.json("loyalty", "clubs", "suggest", "baby", "--channel", "email")
    assert [s["customer_id"] for s in suggested["customers"]] == [people["baby"]]
    baby = str(people["baby"])
    cli.ok("loyalty", "clubs", "join", "baby", baby, "--channel", "email", "--source", "till")
    members = cli.json("loyalty", "clubs", "members", "baby")
    assert [m["customer_id"] for m in members["members"]] == [people["baby"]]
    assert cli.json("loyalty", "clubs", "suggest", "baby")["left_out"] == {
        "member now or before": 1
    }
    assert "left club baby" in cli.ok("loyalty", "clubs", "leave", "baby", baby).stdout
    assert cli.json("loyalty", "clubs", "members", "baby")["members"] == []
    big = str(people["big"])
    cli.ok("loyalty", "clubs", "decline", "baby", big, "--source", "email reply")


def test_events_from_the_command_line(cli, people):
    big, baby = str(people["big"]), str(people["baby"])
    cli.ok(
        "loyalty", "events", "create", "gala", "Gala", "--store", "kamppi",
        "--starts-at", STARTS, "--capacity", "1", "--invite", "5",
    )  # fmt: skip
    ranked = cli.json("loyalty", "events", "rank", "gala")
    assert [(r["customer_id"], r["measure"], r["value"]) for r in ranked] == [
        (people["big"], "spend_12m", "300.00"),
        (people["baby"], "spend_12m", "50.00"),
    ]
    invited = cli.json("loyalty", "events", "invite", "gala")
    assert [g["customer_id"] for g in invited["invited"]] == [people["big"], people["baby"]]
    cli.ok("loyalty", "events", "rsvp", "gala", big, "yes")
    assert "full: 1 of 1" in error_line(cli("loyalty", "events", "rsvp", "gala", baby, "yes"))
    assert "attended gala" in cli.ok("loyalty", "events", "attend", "gala", big).stdout
    rows = list(
        csv.DictReader(io.StringIO(cli.ok("loyalty", "events", "guests", "gala", "--csv").stdout))
    )
    assert [(r["customer_id"], r["rsvp"], bool(r["attended_at"])) for r in rows] == [
        (big, "yes", True),
        (baby, "", False),
    ]
    (event,) = cli.json("loyalty", "events", "list")
    assert (event["invited"], event["yes"], event["attended"]) == (2, 1, 1)


@pytest.mark.parametrize(
    ("args", "place"),
    [
        (("clubs", "set", "missing.yaml"), "FILE"),
        (("clubs", "set", "BAD"), "clubs[0].suggest.min_purchases"),
        (("clubs", "join", "nosuch", "1", "--channel", "email", "--source", "x"), "'nosuch'"),
        (("clubs", "members", "baby", "--channel", "fax"), "channel"),
        (("events", "create", "e", "E", "--store", "kamppi", "--starts-at", "soon",
          "--capacity", "1", "--invite", "1"), "--starts-at"),
        (("events", "create", "e", "E", "--store", "kamppi", "--starts-at", "2026-12-01T18:00",
          "--capacity", "1", "--invite", "1"), "time zone"),
        (("events", "create", "e", "E", "--store", "nowhere", "--starts-at", STARTS,
          "--capacity", "1", "--invite", "1"), "store"),
        (("events", "rsvp", "nosuch", "1", "yes"), "'nosuch'"),
    ],
)  # fmt: skip
def test_the_cli_refuses_bad_input_in_one_line(cli, people, tmp_path, args, place):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(CLUBS))
    cli.ok("loyalty", "clubs", "set", str(good))
    bad = tmp_path / "bad.yaml"
    bad.write_text("- {key: x, name: X, suggest: {groups: [G], min_purchases: 0}}\n")
    args = tuple(
        str(bad) if a == "BAD" else str(tmp_path / a) if a == "missing.yaml" else a for a in args
    )
    assert place in error_line(cli("loyalty", *args))


def test_the_api_runs_clubs_and_events_and_audits_the_reads(db, people):
    key = make_key(db, ["loyalty:read", "loyalty:write"])
    baby, big = people["baby"], people["big"]
    with TestClient(create_app(db), headers={"Authorization": f"Bearer {key}"}) as api:
        club = api.put("/v1/loyalty/clubs/baby", json=CLUBS["clubs"][0] | {"key": None})
        assert club.status_code == 422  # the key is in the path only
        club = api.put("/v1/loyalty/clubs/baby", json={"name": "Baby & Toddler"})
        assert club.status_code == 200, club.text
        rule = {"suggest": {"attributes": {"audience": "baby"}}}
        assert api.put("/v1/loyalty/clubs/baby", json={"name": "Baby", **rule}).status_code == 200
        found = api.get("/v1/loyalty/clubs/baby/suggestions", params={"channel": "email"}).json()
        assert [s["customer_id"] for s in found["customers"]] == [baby]
        joined = api.post(
            "/v1/loyalty/clubs/baby/members",
            json={"customer_id": baby, "channels": ["email", "sms"], "source": "web"},
        )
        assert joined.status_code == 201, joined.text
        assert joined.json()["channels"] == ["email", "sms"]
        members = api.get("/v1/loyalty/clubs/baby/members", params={"channel": "sms"}).json()
        assert [m["customer_id"] for m in members["members"]] == [baby]
        assert api.get("/v1/loyalty/clubs").json()[0]["members"] == 1
        left = api.delete(f"/v1/loyalty/clubs/baby/members/{baby}", params={"reason": "moved"})
        assert left.json()["left_reason"] == "moved"
        declined = api.post(
            "/v1/loyalty/clubs/baby/declines", json={"customer_id": big, "source": "phone"}
        )
        assert declined.status_code == 204

        created = api.post(
            "/v1/loyalty/events",
            json={
                "key": "gala",
                "name": "Gala",
                "store": "kamppi",
                "starts_at": STARTS,
                "capacity": 1,
                "invite_count": 1,
            },
        )
        assert created.status_code == 201, created.text
        ranking = api.get("/v1/loyalty/events/gala/ranking", params={"limit": 1}).json()
        assert [(r["customer_id"], r["value"]) for r in ranking] == [(big, "300.00")]
        invited = api.post("/v1/loyalty/events/gala/invitations").json()
        assert [g["customer_id"] for g in invited["invited"]] == [big]
        answer = api.put(f"/v1/loyalty/events/gala/guests/{big}/rsvp", json={"answer": "yes"})
        assert answer.json()["rsvp"] == "yes"
        came = api.post(f"/v1/loyalty/events/gala/guests/{big}/attendance").json()
        assert (came["recorded"], came["points"]) == (True, [])
        listed = api.get("/v1/loyalty/events/gala/guests").json()
        assert (listed["event"]["yes"], listed["event"]["attended"]) == (1, 1)
        assert api.get("/v1/loyalty/events").json()[0]["invited"] == 1

        for response, loc in [
            (api.put("/v1/loyalty/clubs/Bad Key", json={"name": "x"}), "key"),
            (api.put("/v1/loyalty/clubs/x", json={"name": "x", "purpose": "profiling"}), "purpose"),
            (
                api.post(
                    "/v1/loyalty/clubs/baby/members",
                    json={"customer_id": baby, "channels": [], "source": "web"},
                ),
                "channels",
            ),
            (api.get("/v1/loyalty/clubs/baby/members", params={"channel": "fax"}), "channel"),
            (api.get("/v1/loyalty/clubs/baby/members"), "channel"),
            (
                api.put(f"/v1/loyalty/events/gala/guests/{big}/rsvp", json={"answer": "perhaps"}),
                "answer",
            ),
            (api.put(f"/v1/loyalty/events/gala/guests/{baby}/rsvp", json={"answer": "no"}), "customer_id"),
            (
                api.post(
                    "/v1/loyalty/events",
                    json={
                        "key": "e", "name": "E", "store": "kamppi", "capacity": 1,
                        "invite_count": 1, "starts_at": "2026-12-01T18:00:00",
                    },
                ),
                "starts_at",
            ),
            (
                api.post(
                    "/v1/loyalty/events",
                    json={
                        "key": "e", "name": "E", "store": "nowhere", "capacity": 1,
                        "invite_count": 1, "starts_at": STARTS,
                    },
                ),
                "store",
            ),
        ]:  # fmt: skip
            assert response.status_code == 422, response.text
            assert response.json()["detail"][0]["loc"][-1] == loc
        assert api.get("/v1/loyalty/events/nosuch/guests").status_code == 404
        assert (
            api.post(
                "/v1/loyalty/clubs/nosuch/declines", json={"customer_id": big, "source": "x"}
            ).status_code
            == 404
        )
        api.put("/v1/loyalty/clubs/baby", json={"name": "Baby"})
    with db.transaction() as session:
        actions = set(session.scalars(select(AuditEntry.action)))
    assert {
        "loyalty.club.join",
        "loyalty.club.members.read",
        "loyalty.club.suggestions.read",
        "loyalty.event.ranking.read",
        "loyalty.event.invite",
        "loyalty.event.rsvp",
        "loyalty.event.attend",
        "loyalty.event.guests.read",
    } <= actions


def test_the_api_needs_the_loyalty_permissions(db, people):
    key = make_key(db, ["loyalty:read"])
    with TestClient(create_app(db), headers={"Authorization": f"Bearer {key}"}) as api:
        assert api.get("/v1/loyalty/clubs").status_code == 200
        assert api.put("/v1/loyalty/clubs/baby", json={"name": "Baby"}).status_code == 403
        assert api.post("/v1/loyalty/events/gala/invitations").status_code == 403
