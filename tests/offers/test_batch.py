"""`oppiva offers train` and `/v1/customers/{id}/offers/candidates`: the batch on a small
chain in the store, what it writes, whom it leaves out, and the reads; on both databases."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from oppiva.access.models import AuditEntry
from oppiva.api.app import create_app
from oppiva.db import Store
from oppiva.offers.models import OfferCandidate
from oppiva.purchases.models import Outlet, Product, Receipt, ReceiptLine
from tests.cli.conftest import Cli, error_line
from tests.conftest import make_key
from tests.factories import make_customer

AS_OF = date(2025, 3, 31)
START = datetime(2025, 1, 1, 10, tzinfo=UTC)
PRODUCTS = ("milk", "bread", "coffee", "cheese", "jam", "tea")


@pytest.fixture
def chain(db: Store) -> dict[str, Any]:
    """Twenty customers over three months: everyone buys milk weekly and bread twice a week;
    the first ten also buy coffee with cheese; customer `coffee_only` buys coffee alone; one
    erased and one merged customer buy too."""
    with db.transaction() as session:
        outlet = Outlet(code="s1", name="Store 1")
        products = [
            Product(sku=f"P{i}", name=name, department="food", product_group="g", price_cents=100)
            for i, name in enumerate(PRODUCTS)
        ]
        session.add_all([outlet, *products])
        session.flush()
        ids = {p.name: p.id for p in products}
        customers = [make_customer(session) for _ in range(20)]
        erased = make_customer(session)
        erased.erased_at = START
        merged = make_customer(session)
        merged.merged_into_id = customers[0].id
        session.flush()
        receipt_no = 0

        def buy(customer_id: int, day: int, names: list[str]) -> None:
            nonlocal receipt_no
            receipt_no += 1
            receipt = Receipt(
                source="till",
                external_id=f"R{receipt_no}",
                purchased_at=START + timedelta(days=day),
                outlet_id=outlet.id,
                customer_id=customer_id,
                total_cents=100 * len(names),
            )
            receipt.lines = [
                ReceiptLine(
                    line_no=n + 1,
                    product_id=ids[name],
                    quantity=1.0,
                    unit_price_cents=100,
                    line_total_cents=100,
                )
                for n, name in enumerate(names)
            ]
            session.add(receipt)

        for c, customer in enumerate(customers):
            for day in range(c % 3, 89, 7):
                buy(customer.id, day, ["milk"] + (["coffee", "cheese"] if c < 10 else []))
            for day in range(c % 2, 89, 4):
                buy(customer.id, day, ["bread"])
        coffee_only = make_customer(session)
        session.flush()
        for day in range(0, 89, 10):
            buy(coffee_only.id, day, ["coffee"])
        for other in (erased, merged):
            buy(other.id, 5, ["milk", "jam"])
    return {
        "ids": ids,
        "customers": [c.id for c in customers],
        "coffee_only": coffee_only.id,
        "erased": erased.id,
        "merged": merged.id,
    }


@pytest.fixture
def cli(db: Store) -> Cli:
    return Cli(db.url)


def rows(db: Store, customer_id: int) -> list[OfferCandidate]:
    with db.transaction() as session:
        query = (
            select(OfferCandidate)
            .where(OfferCandidate.customer_id == customer_id)
            .order_by(OfferCandidate.kind, OfferCandidate.rank)
        )
        return list(session.scalars(query))


def test_train_writes_known_cycles_and_new_products_bought_with_the_customers_own(
    db: Store, cli: Cli, chain: dict[str, Any]
) -> None:
    report = cli.json("offers", "train", "--as-of", AS_OF.isoformat())
    assert report["customers"] == 21  # the erased and the merged left out
    ids = chain["ids"]
    first = rows(db, chain["customers"][15])
    known = {r.product_id: r for r in first if r.kind == "known"}
    assert set(known) == {ids["milk"], ids["bread"]}
    milk = known[ids["milk"]]
    assert milk.reason in {"due", "buys_every"}
    assert milk.reason_params["days"] == pytest.approx(7, abs=0.5)
    assert milk.due_on is not None and milk.as_of == AS_OF
    assert known[ids["bread"]].reason_params["days"] == pytest.approx(4, abs=0.5)
    new = [r for r in first if r.kind == "new"]
    assert new and all(r.product_id not in known for r in new)
    assert [r.rank for r in new] == list(range(1, len(new) + 1))
    cheese = [r for r in rows(db, chain["coffee_only"]) if r.product_id == ids["cheese"]]
    assert cheese and cheese[0].kind == "new" and cheese[0].rank == 1
    assert cheese[0].reason == "bought_with"
    assert cheese[0].reason_params == {"products": ["coffee"]}
    assert rows(db, chain["erased"]) == [] and rows(db, chain["merged"]) == []


def test_a_second_run_replaces_the_first(db: Store, cli: Cli, chain: dict[str, Any]) -> None:
    cli.ok("offers", "train", "--as-of", "2025-03-20")
    cli.ok("offers", "train", "--as-of", AS_OF.isoformat(), "--known", "1", "--new", "1")
    with db.transaction() as session:
        dates = set(session.scalars(select(OfferCandidate.as_of)))
        per_customer = session.execute(
            select(OfferCandidate.customer_id, OfferCandidate.kind, func.count()).group_by(
                OfferCandidate.customer_id, OfferCandidate.kind
            )
        ).all()
    assert dates == {AS_OF}
    assert {n for _, _, n in per_customer} == {1}


def test_bad_input_is_refused_and_the_stored_batch_kept(
    db: Store, cli: Cli, chain: dict[str, Any]
) -> None:
    cli.ok("offers", "train", "--as-of", AS_OF.isoformat())
    before = len(rows(db, chain["customers"][0]))
    bad = cli("offers", "train", "--as-of", "31.3.2025")
    assert bad.exit_code == 2
    assert "--as-of '31.3.2025'" in error_line(bad)
    assert cli("offers", "train", "--known", "0").exit_code == 2
    assert len(rows(db, chain["customers"][0])) == before


def test_the_api_lists_candidates_with_explanations_and_audits_the_read(
    db: Store, cli: Cli, chain: dict[str, Any]
) -> None:
    cli.ok("offers", "train", "--as-of", AS_OF.isoformat())
    customer = chain["coffee_only"]
    with TestClient(create_app(db), headers={"Authorization": f"Bearer {make_key(db)}"}) as api:
        answer = api.get(f"/v1/customers/{customer}/offers/candidates", params={"kind": "new"})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body[0]["product_name"] == "cheese"
        assert body[0]["explanation"] == "Popular with customers who buy coffee"
        fi = api.get(
            f"/v1/customers/{customer}/offers/candidates", params={"language": "fi"}
        ).json()
        assert fi[0]["kind"] == "known" and fi[0]["explanation"].startswith("Ostat tätä")
        assert api.get("/v1/customers/999999/offers/candidates").status_code == 404
        erased = api.get(f"/v1/customers/{chain['erased']}/offers/candidates")
        assert erased.status_code == 404
        assert (
            api.get(f"/v1/customers/{customer}/offers/candidates", params={"kind": "x"})
        ).status_code == 422
    with TestClient(
        create_app(db), headers={"Authorization": f"Bearer {make_key(db, ['customers:read'])}"}
    ) as other:
        assert other.get(f"/v1/customers/{customer}/offers/candidates").status_code == 403
    with db.transaction() as session:
        actions = list(
            session.scalars(select(AuditEntry.action).where(AuditEntry.customer_id == customer))
        )
    assert actions.count("offers.candidates.read") == 2


def test_the_cli_shows_a_customers_candidates(cli: Cli, chain: dict[str, Any]) -> None:
    cli.ok("offers", "train", "--as-of", AS_OF.isoformat())
    shown = cli.json("offers", "candidates", str(chain["coffee_only"]), "--kind", "new")
    assert shown[0]["product_name"] == "cheese"
    bad = cli("offers", "candidates", str(chain["coffee_only"]), "--kind", "old")
    assert bad.exit_code == 2 and "kind" in error_line(bad)
