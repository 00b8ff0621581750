"""Operations on the customer register. Services never commit: the adapter owns the transaction."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from oppiva.config import get_settings
from oppiva.customers.identities import NormalIdentity, normalise, parse_kind
from oppiva.customers.models import (
    Address,
    ContactPerson,
    Customer,
    CustomerKind,
    CustomerMerge,
    CustomerStatus,
    Identity,
    IdentityKind,
    Interaction,
    MergeMove,
)
from oppiva.customers.schemas import (
    AddressIn,
    CustomerCreate,
    CustomerUpdate,
    IdentifierIn,
    InteractionIn,
)
from oppiva.db import MAX_ID, utcnow
from oppiva.errors import Conflict, InvalidInput, NotFound
from oppiva.plugins import customer_links, plugin_manager

# Scalar fields a merge may fill on the survivor when the survivor has none.
MERGE_FILLABLE = ("given_name", "family_name", "business_id", "birthday")


def name_key(name: str | None) -> str | None:
    """The form of a name that search compares: case-folded with single spaces."""
    return " ".join(name.casefold().split()) if name else None


def _normalise(kind: str, value: str, kind_field: str, value_field: str) -> NormalIdentity:
    """Normalise with the configured key and region; errors name the field at fault."""
    settings = get_settings()
    return normalise(
        parse_kind(kind, kind_field),
        value,
        key=settings.hashing_key(),
        region=settings.default_region,
        field=value_field,
    )


def _nested(kind: str, value: str, place: str) -> NormalIdentity:
    return _normalise(kind, value, f"{place}.kind", f"{place}.value")


def _identifiers(data: CustomerCreate) -> list[tuple[NormalIdentity, IdentifierIn, str]]:
    """Every identifier of a new customer, normalised, with the field it came from."""
    listed = [("emails", i, IdentifierIn(kind="email", value=v)) for i, v in enumerate(data.emails)]
    listed += [
        ("phones", i, IdentifierIn(kind="phone", value=v)) for i, v in enumerate(data.phones)
    ]
    out = [
        (_normalise(given.kind, given.value, name, f"{name}[{i}]"), given, f"{name}[{i}]")
        for name, i, given in listed
    ]
    out += [
        (_nested(given.kind, given.value, f"identities[{i}]"), given, f"identities[{i}]")
        for i, given in enumerate(data.identities)
    ]
    return out


def get_customer(session: Session, customer_id: int) -> Customer:
    """The customer with this id; erased customers are gone."""
    customer = session.get(Customer, customer_id) if 0 < customer_id <= MAX_ID else None
    if customer is None or customer.status == CustomerStatus.ERASED:
        raise NotFound(f"customer {customer_id} does not exist")
    return customer


def get_active_customer(session: Session, customer_id: int) -> Customer:
    """The customer, refusing a record that was merged into another one."""
    customer = get_customer(session, customer_id)
    if customer.status == CustomerStatus.MERGED:
        raise Conflict(
            f"customer {customer_id} was merged into customer {customer.merged_into_id}",
            customer.merged_into_id,
        )
    return customer


def resolve(session: Session, customer_id: int) -> Customer:
    """Follow merges from `customer_id` to the record that now stands for the person."""
    customer = get_customer(session, customer_id)
    seen = {customer.id}
    while customer.status == CustomerStatus.MERGED and customer.merged_into_id is not None:
        customer = get_customer(session, customer.merged_into_id)
        if customer.id in seen:  # pragma: no cover - merge() never builds a cycle
            raise Conflict(f"merge cycle at customer {customer.id}", customer.id)
        seen.add(customer.id)
    return customer


def _taken(session: Session, ident: NormalIdentity, customer_id: int | None) -> Identity | None:
    """The stored identity equal to `ident`: None if free, itself if `customer_id` has it; a
    conflict naming the holder if someone else has it."""
    existing = session.scalar(
        select(Identity).where(Identity.kind == ident.kind, Identity.value == ident.value)
    )
    if existing is None or existing.customer_id == customer_id:
        return existing
    raise Conflict(
        f"{ident.kind.value} {ident.display} already belongs to customer {existing.customer_id}",
        existing.customer_id,
    )


def _attach_identity(
    session: Session, customer: Customer, ident: NormalIdentity, label: str | None, primary: bool
) -> Identity:
    existing = _taken(session, ident, customer.id)
    if existing is not None:
        return existing
    identity = Identity(
        customer=customer,
        kind=ident.kind.value,
        value=ident.value,
        display=ident.display,
        label=label,
        is_primary=primary,
    )
    session.add(identity)
    session.flush()
    return identity


def _address(data: AddressIn) -> Address:
    return Address(**data.model_dump())


def _name(value: str) -> str:
    name = " ".join(value.split())
    if not name:
        raise InvalidInput("name", "is blank")
    return name


def add_customer(session: Session, data: CustomerCreate) -> Customer:
    """Register a person or organisation with its identities; nothing is written if any is refused."""
    name = _name(data.name)
    normal = _identifiers(data)
    seen: dict[tuple[str, str], str] = {}
    for ident, _, field in normal:
        if (ident.kind, ident.value) in seen:
            raise InvalidInput(field, f"repeats {seen[(ident.kind, ident.value)]}")
        seen[(ident.kind, ident.value)] = field
    for ident, _, _ in normal:
        _taken(session, ident, None)
    customer = Customer(
        kind=data.kind.value,
        status=CustomerStatus.ACTIVE.value,
        name=name,
        name_key=name_key(name),
        given_name=data.given_name,
        family_name=data.family_name,
        business_id=data.business_id,
        language=data.language.value,
        birthday=data.birthday,
        relationship_start=data.relationship_start or date.today(),
        addresses=[_address(a) for a in data.addresses],
    )
    session.add(customer)
    session.flush()
    primary_done: set[str] = set()
    for ident, given, _ in normal:
        primary = given.is_primary or ident.kind.value not in primary_done
        primary_done.add(ident.kind.value)
        _attach_identity(session, customer, ident, given.label, primary)
    return customer


def update_customer(session: Session, customer_id: int, data: CustomerUpdate) -> Customer:
    """Rectify the fields given in `data`."""
    customer = get_active_customer(session, customer_id)
    changes = data.model_dump(exclude_unset=True)
    if "name" in changes and changes["name"] is None:
        raise InvalidInput("name", "a customer always has a name")
    for field, value in changes.items():
        if field == "addresses":
            customer.addresses = [_address(a) for a in data.addresses or []]
        elif field == "name":
            customer.name = _name(value)
            customer.name_key = name_key(customer.name)
        elif field == "relationship_start" and value is None:
            raise InvalidInput(field, "a relationship always has a start date")
        else:
            setattr(customer, field, value.value if hasattr(value, "value") else value)
    customer.updated_at = utcnow()
    session.flush()
    return customer


def add_identity(session: Session, customer_id: int, data: IdentifierIn) -> Identity:
    """Give a customer one more identity; adding one it already has is a no-op."""
    customer = get_active_customer(session, customer_id)
    ident = _normalise(data.kind, data.value, "kind", "value")
    same_kind = [i for i in customer.identities if i.kind == ident.kind.value]
    if data.is_primary:
        for other in same_kind:
            other.is_primary = False
    primary = data.is_primary or not any(i.is_primary for i in same_kind)
    return _attach_identity(session, customer, ident, data.label, primary)


def remove_identity(session: Session, customer_id: int, identity_id: int) -> None:
    """Take an identity off a customer."""
    identity = session.get(Identity, identity_id) if 0 < identity_id <= MAX_ID else None
    if identity is None or identity.customer_id != customer_id:
        raise NotFound(f"customer {customer_id} has no identity {identity_id}")
    session.delete(identity)
    session.flush()


# Built once: a till asks this for every receipt, and building the statement costs more than running it.
_BY_IDENTITY = (
    select(Customer)
    .join(Identity, Identity.customer_id == Customer.id)
    .where(Identity.kind == bindparam("kind"), Identity.value == bindparam("value"))
)


def identify(
    session: Session, identifiers: Iterable[IdentifierIn | tuple[str, str]]
) -> Customer | None:
    """The customer these identifiers point to, or None; identifiers of two customers conflict."""
    normal = []
    for i, given in enumerate(identifiers):
        kind, value = (given.kind, given.value) if isinstance(given, IdentifierIn) else given
        normal.append(_nested(kind, value, f"identifiers[{i}]"))
    found: dict[int, tuple[Customer, str]] = {}
    for n in normal:
        customer = session.scalar(_BY_IDENTITY, {"kind": n.kind.value, "value": n.value})
        if customer is not None:
            found.setdefault(customer.id, (customer, n.display))
    if len(found) > 1:
        listing = ", ".join(f"customer {cid} ({shown})" for cid, (_, shown) in found.items())
        raise Conflict(f"the identifiers point to different customers: {listing}")
    return next(iter(found.values()))[0] if found else None


def _candidate_identities(query: str) -> list[NormalIdentity]:
    """Every identity kind that `query` reads as; a query can be a phone and a card at once."""
    settings = get_settings()
    out = []
    for kind in IdentityKind:
        try:
            out.append(
                normalise(kind, query, key=settings.hashing_key(), region=settings.default_region)
            )
        except InvalidInput:
            continue
    return out


def find_customers(
    session: Session, query: str | None = None, *, limit: int = 50, offset: int = 0
) -> Sequence[Customer]:
    """Active customers matching `query` by any identity (exactly) or by part of their name."""
    if limit < 1 or limit > 1000:
        raise InvalidInput("limit", "must be between 1 and 1000")
    if offset < 0:
        raise InvalidInput("offset", "must not be negative")
    stmt = select(Customer).where(Customer.status == CustomerStatus.ACTIVE)
    if query is not None and query.strip():
        query = query.strip()
        if len(query) > 320:
            raise InvalidInput("q", f"is {len(query)} characters long; at most 320 are searched")
        if "\x00" in query:
            raise InvalidInput("q", "contains a NUL character")
        conditions: list[ColumnElement[bool]] = []
        idents = _candidate_identities(query)
        if idents:
            by_identity = select(Identity.customer_id).where(
                or_(*[(Identity.kind == i.kind) & (Identity.value == i.value) for i in idents])
            )
            conditions.append(Customer.id.in_(by_identity))
        key = name_key(query) or ""
        pattern = "%" + key.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        conditions.append(Customer.name_key.like(pattern, escape="\\"))
        if query.isdigit() and int(query) <= MAX_ID:
            conditions.append(Customer.id == int(query))
        stmt = stmt.where(or_(*conditions))
    stmt = stmt.order_by(Customer.id).limit(limit).offset(offset)
    return session.scalars(stmt).all()


def count_customers(session: Session) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(Customer)
            .where(Customer.status == CustomerStatus.ACTIVE)
        )
        or 0
    )


def customer_stats(session: Session) -> dict[str, Any]:
    """Counts by status, and of active customers by kind and language."""
    by_status = dict(
        session.execute(select(Customer.status, func.count()).group_by(Customer.status)).all()
    )
    active = Customer.status == CustomerStatus.ACTIVE
    by_kind = session.execute(
        select(Customer.kind, func.count()).where(active).group_by(Customer.kind)
    ).all()
    by_language = session.execute(
        select(Customer.language, func.count()).where(active).group_by(Customer.language)
    ).all()
    return {
        **{status.value: by_status.get(status.value, 0) for status in CustomerStatus},
        "by_kind": dict(by_kind),
        "by_language": dict(by_language),
    }


def add_contact_person(
    session: Session, organisation_id: int, person_id: int, role: str, since: date | None = None
) -> ContactPerson:
    """Name a person as a contact of an organisation in a role."""
    organisation = get_active_customer(session, organisation_id)
    person = get_active_customer(session, person_id)
    if organisation.kind != CustomerKind.ORGANISATION:
        raise InvalidInput("organisation_id", f"customer {organisation_id} is not an organisation")
    if person.kind != CustomerKind.PERSON:
        raise InvalidInput("person_id", f"customer {person_id} is not a person")
    link = ContactPerson(
        organisation_id=organisation_id, person_id=person_id, role=role.strip(), since=since
    )
    session.add(link)
    session.flush()
    return link


def contact_persons(session: Session, organisation_id: int) -> Sequence[ContactPerson]:
    get_customer(session, organisation_id)
    return session.scalars(
        select(ContactPerson)
        .where(ContactPerson.organisation_id == organisation_id)
        .order_by(ContactPerson.id)
    ).all()


def record_interaction(
    session: Session, customer_id: int, data: InteractionIn
) -> Interaction | None:
    """Put a contact on the timeline; a customer who asked not to be remembered gets only what law requires."""
    from oppiva.privacy.service import is_remembered

    customer = resolve(session, customer_id)
    if not data.required_by_law and not is_remembered(session, customer.id):
        return None
    occurred = data.occurred_at or utcnow()
    if occurred.tzinfo is None:
        raise InvalidInput("occurred_at", "needs a time zone, e.g. 2026-05-01T10:00:00+03:00")
    entry = Interaction(
        customer_id=customer.id,
        occurred_at=occurred,
        channel=data.channel.value,
        direction=data.direction.value,
        staff=data.staff,
        summary=data.summary,
        object_type=data.object_type,
        object_ref=data.object_ref,
        required_by_law=data.required_by_law,
    )
    session.add(entry)
    session.flush()
    plugin_manager().hook.oppiva_interaction_recorded(session=session, interaction=entry)
    return entry


def timeline(
    session: Session, customer_id: int, *, limit: int = 100, offset: int = 0
) -> Sequence[Interaction]:
    """The customer's contacts, newest first."""
    customer = get_customer(session, customer_id)
    return session.scalars(
        select(Interaction)
        .where(Interaction.customer_id == customer.id)
        .order_by(Interaction.occurred_at.desc(), Interaction.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()


def merge_customers(
    session: Session, survivor_id: int, absorbed_id: int, *, reason: str, actor: str
) -> CustomerMerge:
    """Fold `absorbed` into `survivor`: every row of every domain moves, and the merge remembers which."""
    if survivor_id == absorbed_id:
        raise InvalidInput("absorbed_id", "a customer cannot be merged with itself")
    survivor = get_active_customer(session, survivor_id)
    absorbed = get_active_customer(session, absorbed_id)
    if survivor.kind != absorbed.kind:
        raise InvalidInput(
            "absorbed_id", f"a {absorbed.kind} cannot be merged into a {survivor.kind}"
        )
    if not reason or not reason.strip():
        raise InvalidInput("reason", "say why the two records are one customer")
    filled: dict[str, Any] = {}
    for field in MERGE_FILLABLE:
        mine, theirs = getattr(survivor, field), getattr(absorbed, field)
        if mine is None and theirs is not None:
            setattr(survivor, field, theirs)
            filled[field] = theirs.isoformat() if isinstance(theirs, date) else theirs
    if absorbed.relationship_start < survivor.relationship_start:
        filled["relationship_start"] = [
            survivor.relationship_start.isoformat(),
            absorbed.relationship_start.isoformat(),
        ]
        survivor.relationship_start = absorbed.relationship_start
    record = CustomerMerge(
        survivor_id=survivor_id,
        absorbed_id=absorbed_id,
        reason=reason.strip(),
        merged_by=actor,
        filled_fields=filled,
    )
    session.add(record)
    session.flush()
    plugin_manager().hook.oppiva_before_merge(session=session, merge=record)
    for link in customer_links():
        column = link.table.c[link.column]
        ids = session.scalars(select(link.table.c.id).where(column == absorbed_id)).all()
        if not ids:
            continue
        session.execute(
            update(link.table).where(link.table.c.id.in_(ids)).values({column: survivor_id})
        )
        session.add_all(
            MergeMove(
                merge_id=record.id, table_name=link.table.name, column_name=link.column, row_id=i
            )
            for i in ids
        )
    absorbed.status = CustomerStatus.MERGED.value
    absorbed.merged_into_id = survivor_id
    session.flush()
    plugin_manager().hook.oppiva_after_merge(session=session, merge=record)
    session.flush()
    session.expire_all()
    return record


def unmerge_customer(
    session: Session, absorbed_id: int, *, reason: str, actor: str
) -> CustomerMerge:
    """Undo the merge that absorbed `absorbed_id`: its rows go back and both records are as before."""
    record = session.scalar(
        select(CustomerMerge)
        .where(CustomerMerge.absorbed_id == absorbed_id, CustomerMerge.unmerged_at.is_(None))
        .order_by(CustomerMerge.id.desc())
    )
    if record is None:
        get_customer(session, absorbed_id)
        raise NotFound(f"customer {absorbed_id} is not merged into another customer")
    survivor = get_customer(session, record.survivor_id)
    if survivor.status != CustomerStatus.ACTIVE:
        raise Conflict(
            f"customer {survivor.id} (the survivor) was itself merged into customer "
            f"{survivor.merged_into_id}: unmerge that first",
            survivor.merged_into_id,
        )
    if not reason or not reason.strip():
        raise InvalidInput("reason", "say why the records are two customers after all")
    links = {(link.table.name, link.column): link for link in customer_links()}
    moves = session.scalars(select(MergeMove).where(MergeMove.merge_id == record.id)).all()
    by_link: dict[tuple[str, str], list[int]] = {}
    for move in moves:
        by_link.setdefault((move.table_name, move.column_name), []).append(move.row_id)
    for (table_name, column_name), ids in by_link.items():
        link = links[(table_name, column_name)]
        column = link.table.c[column_name]
        session.execute(
            update(link.table)
            .where(link.table.c.id.in_(ids), column == survivor.id)
            .values({column: absorbed_id})
        )
    for field, value in record.filled_fields.items():
        if field == "relationship_start":
            before, after = value
            if survivor.relationship_start.isoformat() == after:
                survivor.relationship_start = date.fromisoformat(before)
            continue
        current = getattr(survivor, field)
        current = current.isoformat() if isinstance(current, date) else current
        if current == value:
            setattr(survivor, field, None)
    absorbed = get_customer(session, absorbed_id)
    absorbed.status = CustomerStatus.ACTIVE.value
    absorbed.merged_into_id = None
    session.flush()
    plugin_manager().hook.oppiva_after_unmerge(session=session, merge=record)
    record.unmerged_at = utcnow()
    record.unmerged_by = actor
    record.unmerge_reason = reason.strip()
    session.flush()
    session.expire_all()
    return record


def merges_of(session: Session, customer_id: int) -> Sequence[CustomerMerge]:
    """Every merge this customer took part in, on either side."""
    return session.scalars(
        select(CustomerMerge)
        .where(
            or_(CustomerMerge.survivor_id == customer_id, CustomerMerge.absorbed_id == customer_id)
        )
        .order_by(CustomerMerge.id)
    ).all()
