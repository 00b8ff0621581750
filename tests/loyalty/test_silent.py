"""Silent programmes: selection by criteria over the latest analysis (anonymous profiles
included, a control group held out, who stops matching deselected with history kept), benefits
within a budget, the budget's investment against its result, nothing shown at the till; on
both databases."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Boolean, Date, delete, select

from oppiva.analytics.models import CustomerFeature
from oppiva.api.app import create_app
from oppiva.db import Store
from oppiva.errors import Conflict, InvalidInput
from oppiva.loyalty import behaviour, ledger, service, silent
from oppiva.loyalty.models import BenefitGrant, Membership, MembershipStatus, PointsLot
from oppiva.privacy import service as privacy
from oppiva.purchases import service as purchases
from tests.cli.conftest import Cli, error_line
from tests.conftest import make_key
from tests.factories import make_customer
from tests.loyalty.test_till import BODY, CARD
from tests.loyalty.test_till import RULES as OPEN_RULES
from tests.purchases.conftest import _catalogue, receipt

SELECTED_AT = datetime(2026, 3, 1, 12, tzinfo=UTC)
NOW = datetime(2026, 4, 1, 12, tzinfo=UTC)
RULES = """
id: silent
rules:
  - {name: base, kind: per_euro, points_per_euro: 10}
  - {name: feedback, kind: behaviour, event: feedback_given, points: 50}
"""


def analysis(session: Any, as_of: date, visits: dict[int, int]) -> None:
    """Stored features as an analysis run on `as_of` leaves them: `visits_365d` as given,
    every other required feature zero."""
    session.execute(delete(CustomerFeature))
    for customer_id, n in visits.items():
        values: dict[str, Any] = {}
        for column in CustomerFeature.__table__.columns:
            if column.nullable or column.primary_key:
                continue
            values[column.key] = (
                False
                if isinstance(column.type, Boolean)
                else as_of
                if isinstance(column.type, Date)
                else 0
            )
        values.update(customer_id=customer_id, visits_365d=n, as_of=as_of)
        session.add(CustomerFeature(**values))
    session.flush()


def card(n: int) -> str:
    return f"60120000000{n:05d}"


@pytest.fixture
def shop(db: Store) -> list[int]:
    """A silent programme "vip" and four customers with cards 1-4, the fourth an anonymous
    profile recognised at the till."""
    with db.transaction() as session:
        _catalogue(session)
        ledger.create_programme(session, "vip", "VIP", kind="silent")
        service.set_rules(session, "vip", RULES)
        ids = [
            make_customer(session, identities=[{"kind": "card", "value": card(n)}]).id
            for n in (1, 2, 3)
        ]
        stored, _ = purchases.record_receipt(
            session,
            receipt(
                purchased_at=SELECTED_AT - timedelta(days=40),
                identifiers=[{"kind": "card", "value": card(4)}],
            ),
        )
        assert stored.customer_id is not None and stored.customer_id not in ids
        return [*ids, stored.customer_id]


def buy(session: Any, n: int, when: datetime) -> None:
    purchases.record_receipt(
        session, receipt(purchased_at=when, identifiers=[{"kind": "card", "value": card(n)}])
    )


def test_criteria_errors_name_the_line_and_column(db: Store, shop: list[int]) -> None:
    with db.transaction() as session:
        with pytest.raises(InvalidInput, match=r"criteria: line 1, column 16: expected a value"):
            silent.configure(session, "vip", criteria="visits_365d >= ")
        with pytest.raises(InvalidInput, match=r"column 1: spend_in\(\) is computed only"):
            silent.configure(session, "vip", criteria='spend_in("food", 90) > 10')
        with pytest.raises(InvalidInput, match="control_percent: must be a whole percent"):
            silent.configure(session, "vip", control_percent=95)
        kept = silent.configure(session, "vip", criteria='VISITS_365D >= 10 and share("food") > 0')
    assert kept.criteria == 'visits_365d >= 10 and share("food") > 0'


def test_an_open_programme_is_refused(db: Store, shop: list[int]) -> None:
    with db.transaction() as session:
        ledger.create_programme(session, "plussa", "Plussa")
        with pytest.raises(InvalidInput, match="'plussa' is an open programme"):
            silent.configure(session, "plussa", criteria="visits_365d >= 1")


def test_selection_enrols_matches_and_deselects_who_stops_matching(
    db: Store, shop: list[int]
) -> None:
    a, b, c, profile = shop
    with db.transaction() as session:
        silent.configure(session, "vip", criteria="visits_365d >= 10")
        with pytest.raises(Conflict, match="no analysis has run yet"):
            silent.select_members(session, "vip", SELECTED_AT)
    with db.transaction() as session:
        analysis(session, date(2026, 2, 28), {a: 12, b: 3, c: 10, profile: 20})
        first = silent.select_members(session, "vip", SELECTED_AT)
    assert (first.matched, sorted(first.enrolled), first.ended) == (3, sorted([a, c, profile]), [])
    with db.transaction() as session:
        again = silent.select_members(session, "vip", SELECTED_AT + timedelta(hours=1))
        assert (again.enrolled, again.held_out, again.ended, again.members) == ([], [], [], 3)
        analysis(session, date(2026, 3, 31), {a: 12, b: 15, c: 2, profile: 20})
        later = silent.select_members(session, "vip", NOW)
    assert (later.enrolled, later.ended, later.members) == ([b], [c], 3)
    with db.transaction() as session:
        statuses = {
            m.customer_id: (m.status, m.source) for m in session.scalars(select(Membership))
        }
        assert statuses[c] == (MembershipStatus.DESELECTED, "selected")
        assert statuses[profile] == (MembershipStatus.ACTIVE, "selected")
        stints = [(s.customer_id, s.ended_at) for s in silent.selection(session, "vip")]
        assert (c, NOW) in stints and len(stints) == 4
        analysis(session, date(2026, 4, 30), {c: 30})
        back = silent.select_members(session, "vip", NOW + timedelta(days=30))
        assert back.enrolled == [c]
        assert session.scalar(select(Membership.status).where(Membership.customer_id == c)) == (
            MembershipStatus.ACTIVE
        )


def test_a_control_share_is_held_out_untreated_and_stable(db: Store) -> None:
    with db.transaction() as session:
        ledger.create_programme(session, "vip", "VIP", kind="silent")
        ids = [make_customer(session).id for _ in range(40)]
        analysis(session, date(2026, 2, 28), dict.fromkeys(ids, 20))
        silent.configure(session, "vip", criteria="visits_365d >= 10", control_percent=30)
        result = silent.select_members(session, "vip", SELECTED_AT)
        members = set(session.scalars(select(Membership.customer_id)))
    assert members == set(result.enrolled)
    assert set(result.held_out) == {i for i in ids if silent.is_held_out("vip", i, 30)}
    assert 0 < len(result.held_out) < 40 and set(result.held_out).isdisjoint(members)


def test_a_silent_member_sees_nothing_at_the_till_and_earns_no_basket_points(
    db: Store, shop: list[int]
) -> None:
    a = shop[0]
    with db.transaction() as session:
        ledger.join(session, "vip", a, "selected", at=SELECTED_AT)
        stored, _ = purchases.record_receipt(
            session,
            receipt(purchased_at=NOW, identifiers=[{"kind": "card", "value": card(1)}]),
        )
        assert service.accrue_for_receipt(session, stored) == []
        assert session.scalars(select(PointsLot)).all() == []
        # Behaviour is still recorded, as the business's measure, and marked not shown.
        (award,) = behaviour.award(
            session, a, "feedback_given", source="survey", external_id="1", at=NOW
        )
    assert (award.points, award.visible) == (50, False)


def test_benefits_are_granted_with_their_cost_and_refused_beyond_the_budget(
    db: Store, shop: list[int]
) -> None:
    a, b = shop[0], shop[1]
    with db.transaction() as session:
        ledger.join(session, "vip", a, "selected", at=SELECTED_AT)
        silent.configure(session, "vip", budget_eur=Decimal("30"), point_value_cents=Decimal(1))
        silent.set_benefit(
            session, "vip", "gift", name="Surprise gift", kind="relationship", unit_cost_eur="12.50"
        )
        with pytest.raises(InvalidInput, match="kind: must be one of discount"):
            silent.set_benefit(session, "vip", "x", name="X", kind="cash", unit_cost_eur="1")
        with pytest.raises(InvalidInput, match="unit_cost: must be an amount in euros >= 0"):
            silent.set_benefit(session, "vip", "x", name="X", kind="service", unit_cost_eur="-1")
        granted = silent.grant(session, "vip", a, "gift", source="crm", external_id="g1", at=NOW)
        assert granted.cost_cents == 1250
        again = silent.grant(session, "vip", a, "gift", source="crm", external_id="g1", at=NOW)
        assert again.id == granted.id
        behaviour.award(session, a, "feedback_given", source="survey", external_id="1", at=NOW)
        with pytest.raises(InvalidInput, match=f"customer {b} is not a member"):
            silent.grant(session, "vip", b, "gift", source="crm", external_id="g2")
        with pytest.raises(InvalidInput, match="benefit: programme 'vip' has no benefit 'car'"):
            silent.grant(session, "vip", a, "car", source="crm", external_id="g3")
    with db.transaction() as session, pytest.raises(Conflict) as refused:
        # 12.50 in benefits + 50 points at 1 cent = 13.00 invested; 2 x 12.50 is too much.
        silent.grant(session, "vip", a, "gift", quantity=2, source="crm", external_id="g4")
    assert str(refused.value) == (
        "granting 2 x 'gift' costs 25.00 EUR: the budget of programme 'vip' is 30.00 EUR, "
        "13.00 EUR invested, 17.00 EUR left"
    )
    with db.transaction() as session:
        report = silent.budget(session, "vip", NOW)
    assert (report.benefits_cents, report.points, report.points_cents) == (1250, 50, 50)
    assert report.left_cents == 1700


def test_the_budget_measures_members_against_the_control_group(db: Store, shop: list[int]) -> None:
    a, b, c, profile = shop
    with db.transaction() as session:
        analysis(session, date(2026, 2, 28), {a: 20, b: 20, c: 20, profile: 20})
        silent.configure(session, "vip", criteria="visits_365d >= 10", control_percent=50)
        result = silent.select_members(session, "vip", SELECTED_AT)
        silent.set_benefit(
            session, "vip", "delivery", name="Free delivery", kind="service", unit_cost_eur="5"
        )
    assert result.enrolled and result.held_out
    members, control = result.enrolled, result.held_out
    cards = {a: 1, b: 2, c: 3, profile: 4}
    with db.transaction() as session:
        for who in members:
            for day in (3, 10):
                if who != profile:
                    buy(session, cards[who], SELECTED_AT + timedelta(days=day))
            silent.grant(
                session, "vip", who, "delivery", source="t", external_id=f"d{who}", at=SELECTED_AT
            )
        for who in control:
            if who != profile:
                buy(session, cards[who], SELECTED_AT + timedelta(days=3))
        report = silent.budget(session, "vip", NOW, record=True)
    per_member = sum(567 for who in members if who != profile for _ in (3, 10)) / len(members)
    per_control = sum(567 for who in control if who != profile) / len(control)
    expected = round((per_member - per_control) * len(members))
    assert (report.members, report.control) == (len(members), len(control))
    assert report.result_cents == expected
    assert report.investment_cents == 500 * len(members)
    assert report.ratio == (Decimal(expected) / (500 * len(members))).quantize(Decimal("0.01"))
    assert [h["result_cents"] for h in report.history] == [expected]


def test_the_budget_against_the_members_own_baseline(db: Store, shop: list[int]) -> None:
    a = shop[0]
    with db.transaction() as session:
        analysis(session, date(2026, 2, 28), {a: 20})
        silent.configure(
            session, "vip", criteria="visits_365d >= 10", target="baseline", period_days=20
        )
        silent.select_members(session, "vip", SELECTED_AT)
        buy(session, 1, SELECTED_AT - timedelta(days=25))  # before the baseline window
        buy(session, 1, SELECTED_AT - timedelta(days=5))
        for day in (2, 9, 16, 25):  # the last is after the 20 days compared
            buy(session, 1, SELECTED_AT + timedelta(days=day))
        report = silent.budget(session, "vip", NOW)
    assert report.result_cents == 3 * 567 - 567
    assert report.ratio is None  # nothing invested yet


def test_cli_configures_selects_grants_and_reports(db: Store, tmp_path: Path) -> None:
    cli = Cli(db.url)
    shipped = resources.files("oppiva.demo").joinpath("data", "presets", "department_store")
    for kind in ("products", "stores", "receipts"):
        path = tmp_path / f"{kind}.csv"
        path.write_bytes(shipped.joinpath(f"{kind}.csv").read_bytes())
        cli.ok("import", kind, str(path))
    cli.ok("loyalty", "create", "vip", "VIP", "--kind", "silent")
    refused = cli("loyalty", "silent", "vip", "--criteria", "visits_365d >>= 3")
    assert refused.exit_code == 2
    assert refused.stderr.startswith("error: criteria: line 1, column 14: expected a value")
    cli.ok("loyalty", "silent", "vip", "--criteria", "visits_365d >= 1", "--budget", "100")
    assert "no analysis has run yet" in error_line(cli("loyalty", "select", "vip"))
    cli.ok("analyze", "--as-of", "2025-12-31")
    selected = cli.json("loyalty", "select", "vip")
    assert selected["matched"] == selected["members"] == len(selected["enrolled"]) > 0
    who = str(selected["enrolled"][0])
    cli.ok(
        "loyalty",
        "benefit",
        "vip",
        "invite",
        "--name",
        "Invitation",
        "--kind",
        "relationship",
        "--unit-cost",
        "60",
    )
    cli.ok("loyalty", "grant", "vip", who, "invite")
    over = error_line(cli("loyalty", "grant", "vip", who, "invite"))
    assert "the budget of programme 'vip' is 100.00 EUR, 60.00 EUR invested" in over
    report = cli.json("loyalty", "budget", "vip", "--record")
    assert (report["investment_eur"], report["budget_eur"]) == ("60.00", "100.00")
    assert len(report["history"]) == 1


def test_api_routes(db: Store, shop: list[int]) -> None:
    a = shop[0]
    key = make_key(db)
    with TestClient(create_app(db), headers={"Authorization": f"Bearer {key}"}) as client:
        r = client.patch("/v1/loyalty/programmes/vip/silent", json={"criteria": "visits_365d >="})
        assert r.status_code == 422
        (error,) = r.json()["detail"]
        assert error["loc"] == ["criteria"] and error["msg"].startswith("line 1, column 15")
        r = client.patch(
            "/v1/loyalty/programmes/vip/silent",
            json={"criteria": "visits_365d >= 5", "budget_eur": "20", "target": "control"},
        )
        assert r.status_code == 200 and r.json()["budget_eur"] == "20.00"
        with db.transaction() as session:
            analysis(session, date(2026, 2, 28), {a: 9})
        r = client.post("/v1/loyalty/programmes/vip/selection")
        assert r.status_code == 200 and r.json()["enrolled"] == [a]
        r = client.put(
            "/v1/loyalty/programmes/vip/benefits/ten-off",
            json={"name": "10 % off", "kind": "discount", "unit_cost_eur": "15"},
        )
        assert r.status_code == 200
        grant = {"customer_id": a, "benefit": "ten-off", "source": "crm", "external_id": "1"}
        r = client.post("/v1/loyalty/programmes/vip/grants", json=grant)
        assert r.status_code == 201 and r.json()["cost_eur"] == "15.00"
        r = client.post("/v1/loyalty/programmes/vip/grants", json={**grant, "external_id": "2"})
        assert r.status_code == 409 and "20.00 EUR, 15.00 EUR invested, 5.00 EUR left" in r.text
        r = client.post(
            "/v1/loyalty/behaviour",
            json={"customer_id": a, "event": "feedback_given", "source": "app", "external_id": "f"},
        )
        assert r.status_code == 200
        assert [(x["programme"], x["points"], x["visible"]) for x in r.json()] == [
            ("vip", 50, False)
        ]
        r = client.post(
            "/v1/loyalty/behaviour",
            json={"customer_id": a, "event": "dancing", "source": "app", "external_id": "f"},
        )
        assert r.status_code == 422
        r = client.get("/v1/loyalty/programmes/vip/budget")
        assert r.status_code == 200 and r.json()["benefits_eur"] == "15.00"
        assert client.get("/v1/loyalty/programmes/vip/benefits").json()[0]["key"] == "ten-off"


def test_export_lists_stints_benefits_and_behaviour_and_erasure_drops_the_notes(
    db: Store, shop: list[int]
) -> None:
    a = shop[0]
    with db.transaction() as session:
        analysis(session, date(2026, 2, 28), {a: 20})
        silent.configure(session, "vip", criteria="visits_365d >= 10")
        silent.select_members(session, "vip", SELECTED_AT)
        silent.set_benefit(
            session, "vip", "gift", name="Surprise gift", kind="relationship", unit_cost_eur="9"
        )
        silent.grant(
            session, "vip", a, "gift", source="crm", external_id="1", note="loves orchids", at=NOW
        )
        behaviour.award(session, a, "feedback_given", source="survey", external_id="s", at=NOW)
        (record,) = privacy.export_person(session, a)["records"]
    assert record["loyalty_selection"][0]["group"] == "member"
    assert record["loyalty_benefits"][0]["note"] == "loves orchids"
    assert record["loyalty_behaviour"][0]["points"] == 50
    with db.transaction() as session:
        privacy.erase_person(session, a)
    with db.transaction() as session:
        assert silent.budget(session, "vip", NOW).benefits_cents == 900
        (note,) = session.scalars(select(BenefitGrant.note)).all()
    assert note is None


def test_the_receipt_answer_never_mentions_a_silent_programme(db: Store) -> None:
    with db.transaction() as session:
        _catalogue(session)
        ledger.create_programme(session, "plussa", "Plussa")
        service.set_rules(session, "plussa", OPEN_RULES)
        ledger.create_programme(session, "vip", "VIP", kind="silent")
        service.set_rules(session, "vip", RULES)
        customer = make_customer(session, identities=[{"kind": "card", "value": CARD}]).id
        ledger.join(session, "plussa", customer)
        ledger.join(session, "vip", customer, "selected")
    key = make_key(db, ["receipts:write"], store="kamppi")
    with TestClient(create_app(db), headers={"Authorization": f"Bearer {key}"}) as till:
        response = till.post("/v1/receipts", json=BODY, headers={"Idempotency-Key": "s-1"})
    assert response.status_code == 201, response.text
    assert [entry["programme"] for entry in response.json()["loyalty"]] == ["plussa"]
    with db.transaction() as session:
        assert ledger.balance(session, "vip", customer).earned == 0
