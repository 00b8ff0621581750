"""Merging two records of one customer, and undoing it exactly."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from oppiva.customers import service
from oppiva.customers.models import Customer, CustomerStatus, Identity, Interaction
from oppiva.customers.schemas import CustomerUpdate, IdentifierIn, InteractionIn
from oppiva.errors import Conflict, InvalidInput, NotFound
from oppiva.plugins import customer_links
from oppiva.privacy import service as privacy
from tests.conftest import empty_tables
from tests.factories import make_customer


def snapshot(session) -> dict[str, list[tuple]]:
    """Every customer row and every row of every customer-linked table, as plain tuples."""
    session.expire_all()
    state = {
        "customer": sorted(tuple(r) for r in session.execute(select(Customer.__table__)).all())
    }
    for table in {link.table for link in customer_links()}:
        state[table.name] = sorted(tuple(r) for r in session.execute(select(table)).all())
    return state


def note(session, customer_id: int, text: str) -> None:
    service.record_interaction(
        session,
        customer_id,
        InteractionIn(
            channel="store",
            direction="inbound",
            summary=text,
            occurred_at=datetime(2026, 3, 1, tzinfo=UTC),
        ),
    )


def test_merge_moves_everything_to_the_survivor(session):
    org = make_customer(session, kind="organisation", name="Kahvila Aurinko Ky")
    keep = make_customer(session, name="Maija Meikäläinen", relationship_start="2024-01-01")
    fold = make_customer(
        session,
        name="M. Meikäläinen",
        birthday="1980-05-06",
        relationship_start="2020-01-01",
        addresses=[{"street": "Puistokatu 1", "postal_code": "00100", "city": "Helsinki"}],
    )
    note(session, fold.id, "asked about prams")
    privacy.set_consent(
        session, fold.id, purpose="marketing", channel="email", status="granted", source="web"
    )
    service.add_contact_person(session, org.id, fold.id, "buyer")
    fold_email = fold.identities[0].value

    record = service.merge_customers(
        session, keep.id, fold.id, reason="same person at two tills", actor="anna"
    )

    survivor, absorbed = session.get(Customer, keep.id), session.get(Customer, fold.id)
    assert absorbed.status == CustomerStatus.MERGED and absorbed.merged_into_id == keep.id
    assert service.identify(session, [("email", fold_email)]).id == keep.id
    assert len(survivor.identities) == 4 and absorbed.identities == []
    assert [a.city for a in survivor.addresses] == ["Helsinki"]
    assert [e.summary for e in service.timeline(session, keep.id)] == ["asked about prams"]
    assert privacy.can_contact(session, keep.id, "marketing", "email").allowed
    assert [c.person_id for c in service.contact_persons(session, org.id)] == [keep.id]
    # Blanks are filled and the relationship starts at the earlier of the two.
    assert survivor.birthday == date(1980, 5, 6) and survivor.relationship_start == date(2020, 1, 1)
    assert survivor.name == "Maija Meikäläinen"
    assert (record.merged_by, record.reason) == ("anna", "same person at two tills")
    assert [m.id for m in service.merges_of(session, fold.id)] == [record.id]
    # A merged record is found by no search, and refuses changes.
    assert fold.id not in [c.id for c in service.find_customers(session, "meikäläinen")]
    with pytest.raises(Conflict, match=f"merged into customer {keep.id}"):
        service.add_identity(session, fold.id, IdentifierIn(kind="login", value="x"))


def test_unmerge_restores_both_customers_exactly(session):
    keep = make_customer(session, relationship_start="2024-01-01")
    fold = make_customer(
        session,
        birthday="1980-05-06",
        relationship_start="2020-01-01",
        identities=[{"kind": "card", "value": "6012000011112222"}],
    )
    note(session, keep.id, "kept's note")
    note(session, fold.id, "folded's note")
    privacy.set_consent(
        session, fold.id, purpose="profiling", channel="all", status="granted", source="web"
    )
    before = snapshot(session)

    service.merge_customers(session, keep.id, fold.id, reason="same", actor="anna")
    note(session, keep.id, "after the merge")
    record = service.unmerge_customer(
        session, fold.id, reason="twins, not one person", actor="leena"
    )

    after = snapshot(session)
    added = [row for row in after["interaction"] if row not in before["interaction"]]
    assert [row[6] for row in added] == ["after the merge"]  # summary column
    after["interaction"] = [row for row in after["interaction"] if row not in added]
    assert after == before
    assert (record.unmerged_by, record.unmerge_reason) == ("leena", "twins, not one person")


def test_unmerge_keeps_a_field_edited_after_the_merge(session):
    keep = make_customer(session)
    fold = make_customer(session, birthday="1980-05-06")
    service.merge_customers(session, keep.id, fold.id, reason="same", actor="a")
    service.update_customer(session, keep.id, CustomerUpdate(birthday="1981-01-01"))
    service.unmerge_customer(session, fold.id, reason="no", actor="a")
    assert session.get(Customer, keep.id).birthday == date(1981, 1, 1)


def test_merge_refuses_what_cannot_be_one_customer(session):
    a, b = make_customer(session), make_customer(session)
    org = make_customer(session, kind="organisation", name="Oy Ab")
    with pytest.raises(InvalidInput, match="itself"):
        service.merge_customers(session, a.id, a.id, reason="x", actor="t")
    with pytest.raises(InvalidInput, match="cannot be merged into"):
        service.merge_customers(session, a.id, org.id, reason="x", actor="t")
    with pytest.raises(InvalidInput, match="reason"):
        service.merge_customers(session, a.id, b.id, reason=" ", actor="t")
    with pytest.raises(NotFound):
        service.merge_customers(session, a.id, 999, reason="x", actor="t")
    service.merge_customers(session, a.id, b.id, reason="x", actor="t")
    with pytest.raises(Conflict, match="was merged into"):
        service.merge_customers(session, org.id, b.id, reason="x", actor="t")


def test_unmerges_go_in_reverse_order_of_chained_merges(session):
    a, b, c = make_customer(session), make_customer(session), make_customer(session)
    service.merge_customers(session, b.id, a.id, reason="x", actor="t")
    service.merge_customers(session, c.id, b.id, reason="x", actor="t")
    assert service.resolve(session, a.id).id == c.id
    with pytest.raises(Conflict, match="unmerge that first"):
        service.unmerge_customer(session, a.id, reason="x", actor="t")
    with pytest.raises(NotFound, match="not merged"):
        service.unmerge_customer(session, c.id, reason="x", actor="t")
    service.unmerge_customer(session, b.id, reason="x", actor="t")
    service.unmerge_customer(session, a.id, reason="x", actor="t")
    session.expire_all()
    assert [len(x.identities) for x in (a, b, c)] == [2, 2, 2]


operations = st.lists(
    st.tuples(st.sampled_from(["merge", "unmerge"]), st.integers(0, 3), st.integers(0, 3)),
    max_size=12,
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=operations)
def test_any_merges_and_unmerges_keep_every_identity_and_contact_exactly_once(db, ops):
    empty_tables(db)
    with db.transaction() as session:
        people = [make_customer(session) for _ in range(4)]
        for p in people:
            note(session, p.id, f"note of {p.id}")
        ids = [p.id for p in people]
        original = snapshot(session)
        owners = {i.id: i.customer_id for i in session.scalars(select(Identity))}
        contacts = {e.id: e.customer_id for e in session.scalars(select(Interaction))}
    stack: list[int] = []
    for op, x, y in ops:
        with db.transaction() as session:
            if op == "merge":
                survivor, absorbed = ids[x], ids[y]
                try:
                    service.merge_customers(session, survivor, absorbed, reason="p", actor="t")
                    stack.append(absorbed)
                except (InvalidInput, Conflict):
                    pass
            elif stack:
                absorbed = stack[x % len(stack)]
                try:
                    service.unmerge_customer(session, absorbed, reason="p", actor="t")
                    stack.remove(absorbed)
                except Conflict:
                    pass
        with db.transaction() as session:
            now_owners = {i.id: i.customer_id for i in session.scalars(select(Identity))}
            now_contacts = {e.id: e.customer_id for e in session.scalars(select(Interaction))}
            assert now_owners.keys() == owners.keys() and now_contacts.keys() == contacts.keys()
            for cid in [*now_owners.values(), *now_contacts.values()]:
                assert session.get(Customer, cid).status == CustomerStatus.ACTIVE
            for identity_id, owner in owners.items():
                assert service.resolve(session, owner).id == now_owners[identity_id]
    with db.transaction() as session:
        while stack:
            service.unmerge_customer(session, stack.pop(), reason="undo", actor="t")
    with db.transaction() as session:
        assert snapshot(session) == original
