"""The purchase history: catalogue, outlets, receipts with identification at intake."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, cast

from sqlalchemy import Insert, Table, and_, bindparam, func, insert, literal, or_, select, true
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from oppiva.config import get_settings
from oppiva.customers import service as customers
from oppiva.customers.identities import NormalIdentity, keyed_hash, normalise, parse_kind
from oppiva.customers.models import Customer, CustomerStatus, Identity, IdentityKind
from oppiva.db import utcnow
from oppiva.errors import InvalidInput, NotFound
from oppiva.privacy.models import PREFERENCE_DEFAULTS, Preference, PreferenceEvent
from oppiva.purchases.models import IdempotentResponse, Outlet, Product, Receipt, ReceiptLine
from oppiva.purchases.schemas import OutletIn, ProductIn, ReceiptIn, ReceiptLineIn

# Which identifier names the buyer when a receipt's identifiers point to two enrolled people.
PRIORITY = (
    IdentityKind.CARD,
    IdentityKind.PAYMENT_TOKEN,
    IdentityKind.LOGIN,
    IdentityKind.EMAIL,
    IdentityKind.PHONE,
    IdentityKind.DEVICE,
    IdentityKind.EXTERNAL,
)
INTAKE_ACTOR = "intake"
RECEIPT_PRODUCTS = "oppiva.purchases.receipt_products"
"""The `Session.info` entry holding the products of the receipt recorded last."""


def cents(euros: Decimal) -> int:
    """Euros to whole cents, rounding half away from zero as tills do."""
    return int((euros * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


# Catalogue ---------------------------------------------------------------------------------


def save_product(session: Session, data: ProductIn) -> Product:
    """Create or update a product by its sku."""
    product = session.scalar(select(Product).where(Product.sku == data.sku)) or Product(
        sku=data.sku
    )
    product.name = data.name
    product.department = data.department
    product.product_group = data.group
    product.subgroup = data.subgroup
    product.brand = data.brand
    product.price_cents = cents(data.price)
    product.cost_cents = cents(data.cost) if data.cost is not None else None
    product.launch_date = data.launch_date
    product.attributes = data.attributes
    session.add(product)
    session.flush()
    return product


def save_outlet(session: Session, data: OutletIn) -> Outlet:
    """Create or update an outlet (a store or another channel) by its code."""
    outlet = session.scalar(select(Outlet).where(Outlet.code == data.code)) or Outlet(
        code=data.code
    )
    outlet.name = data.name
    outlet.kind = data.kind.value
    outlet.city = data.city
    session.add(outlet)
    session.flush()
    return outlet


def get_product(session: Session, sku: str) -> Product:
    product = session.scalar(select(Product).where(Product.sku == sku))
    if product is None:
        raise NotFound(f"product {sku!r} does not exist")
    return product


# Identification at intake --------------------------------------------------------------------


@dataclass
class Buyer:
    """Who a receipt belongs to, and what intake learnt on the way."""

    customer_id: int | None = None
    identified_by: str | None = None
    identifiers: list[str] = field(default_factory=list)
    created_profile: bool = False
    merged: list[int] = field(default_factory=list)


_IDENTITY = cast(Table, Identity.__table__)
_PREFERENCES = cast(Table, PreferenceEvent.__table__)
_OWNER_OF_ONE = select(
    _IDENTITY.c.kind,
    _IDENTITY.c.value,
    _IDENTITY.c.customer_id,
    # The owner's "remember me" as `privacy.service.preference` reads it, in the same query.
    select(_PREFERENCES.c.value)
    .where(
        _PREFERENCES.c.customer_id == _IDENTITY.c.customer_id,
        _PREFERENCES.c.name == Preference.REMEMBER_ME.value,
        _PREFERENCES.c.effective_at <= bindparam("now", type_=_PREFERENCES.c.effective_at.type),
    )
    .order_by(_PREFERENCES.c.effective_at.desc(), _PREFERENCES.c.id.desc())
    .limit(1)
    .scalar_subquery(),
).where(_IDENTITY.c.kind == bindparam("kind"), _IDENTITY.c.value == bindparam("value"))


def resolve_buyer(
    session: Session,
    given: Sequence[tuple[str, str, str]],
    *,
    receipt_ref: str,
    when_date: object = None,
) -> Buyer:
    """Resolve a receipt's identifiers (kind, value, field) to a customer.

    Unknown identifiers are attached to the customer the known ones point to; identifiers of
    a recognised-but-anonymous profile and of one enrolled customer fold into the enrolled
    one (a card at the till and an email at the web shop become one customer); an unknown
    card, token or email makes a new recognised-but-anonymous profile unless settings say no.
    """
    settings = get_settings()
    key = settings.hashing_key()
    normal: list[NormalIdentity] = []
    for kind, value, place in given:
        ident = normalise(
            parse_kind(kind, f"{place}.kind"),
            value,
            key=key,
            region=settings.default_region,
            field=f"{place}.value",
        )
        if all((ident.kind, ident.value) != (n.kind, n.value) for n in normal):
            normal.append(ident)
    buyer = Buyer(
        identifiers=[f"{n.kind.value}:{keyed_hash(key, n.kind, n.value)[:32]}" for n in normal]
    )
    if not normal:
        return buyer
    remembered: bool | None = None
    if len(normal) == 1:  # the till's usual case: one card
        found = session.execute(
            _OWNER_OF_ONE,
            {"kind": normal[0].kind.value, "value": normal[0].value, "now": utcnow()},
        ).all()
        rows = [(kind, value, cid) for kind, value, cid, _ in found]
        if found:
            choice = found[0][3]
            remembered = (
                PREFERENCE_DEFAULTS[Preference.REMEMBER_ME] if choice is None else bool(choice)
            )
    else:
        rows = [
            (kind, value, cid)
            for kind, value, cid in session.execute(
                select(Identity.kind, Identity.value, Identity.customer_id).where(
                    or_(
                        *[
                            (Identity.kind == n.kind.value) & (Identity.value == n.value)
                            for n in normal
                        ]
                    )
                )
            )
        ]
    owner_of = {(kind, value): cid for kind, value, cid in rows}
    owners = list(dict.fromkeys(owner_of.values()))
    ranked = sorted(normal, key=lambda n: PRIORITY.index(n.kind))
    if not owners:
        if not settings.recognise_unknown_identifiers:
            return buyer
        profile = Customer(
            kind="person",
            status=CustomerStatus.ACTIVE.value,
            enrolled=False,
            language="fi",
            relationship_start=when_date or utcnow().date(),
        )
        session.add(profile)
        session.flush()
        owner, buyer.created_profile = profile, True
    elif len(owners) == 1:
        # The customer is loaded only when an identifier is to be attached to them.
        unknown = [n for n in normal if (n.kind.value, n.value) not in owner_of]
        return _finish(session, buyer, owners[0], ranked[0], unknown, remembered=remembered)
    else:
        people = [session.get_one(Customer, cid) for cid in owners]
        enrolled = [p for p in people if p.enrolled]
        if len(enrolled) > 1:
            # Two enrolled people behind one receipt (a shared card?): never merged automatically.
            first = next(n for n in ranked if (n.kind.value, n.value) in owner_of)
            return _finish(session, buyer, owner_of[(first.kind.value, first.value)], first, [])
        owner = enrolled[0] if enrolled else min(people, key=lambda p: p.id)
        kinds = ", ".join(sorted({n.kind.value for n in normal}))
        for other in people:
            if other.id != owner.id:
                customers.merge_customers(
                    session,
                    owner.id,
                    other.id,
                    reason=f"receipt {receipt_ref} showed {kinds} together",
                    actor=INTAKE_ACTOR,
                )
                buyer.merged.append(other.id)
        owner = session.get_one(Customer, owner.id)
    unknown = [n for n in normal if (n.kind.value, n.value) not in owner_of]
    return _finish(session, buyer, owner.id, ranked[0], attach=unknown)


def _finish(
    session: Session,
    buyer: Buyer,
    owner_id: int,
    by: NormalIdentity,
    attach: list[NormalIdentity],
    *,
    remembered: bool | None = None,
) -> Buyer:
    from oppiva.privacy.service import is_remembered

    if remembered is None:
        remembered = is_remembered(session, owner_id)
    if not remembered:
        # "Remember me" off: the purchase is kept for the books, not on the person.
        return buyer
    owner = session.get_one(Customer, owner_id) if attach else None
    for ident in attach:
        assert owner is not None
        session.add(
            Identity(
                customer_id=owner.id,
                kind=ident.kind.value,
                value=ident.value,
                display=ident.display,
                label="seen at intake",
                is_primary=not any(i.kind == ident.kind.value for i in owner.identities),
            )
        )
    session.flush()
    buyer.customer_id = owner_id
    buyer.identified_by = by.kind.value
    return buyer


# Receipts ------------------------------------------------------------------------------------


def find_receipt(session: Session, source: str, external_id: str) -> Receipt | None:
    return session.scalar(
        select(Receipt).where(Receipt.source == source, Receipt.external_id == external_id)
    )


_RECEIPT_ID = select(Receipt.__table__.c.id).where(
    Receipt.__table__.c.source == bindparam("source"),
    Receipt.__table__.c.external_id == bindparam("external_id"),
)
_OUTLET_ID = select(Outlet.__table__.c.id).where(Outlet.__table__.c.code == bindparam("code"))
_PRODUCTS = select(Product).where(Product.sku.in_(bindparam("skus", expanding=True)))


def _receipt_id(session: Session, source: str, external_id: str) -> int | None:
    return session.scalar(_RECEIPT_ID, {"source": source, "external_id": external_id})


def _line_total(line: ReceiptLineIn, place: str) -> int:
    expected = cents(line.quantity * line.unit_price) - cents(line.discount)
    if line.line_total is not None and abs(cents(line.line_total) - expected) > 1:
        raise InvalidInput(
            f"{place}.line_total",
            f"is {line.line_total} but quantity × unit price − discount is {Decimal(expected) / 100}",
        )
    return cents(line.line_total) if line.line_total is not None else expected


@dataclass(frozen=True)
class Answer:
    """The answer given first to an Idempotency-Key, and a hash of the request it answered."""

    request_hash: str
    status_code: int
    body: dict[str, Any]


@dataclass(frozen=True)
class Lookup:
    """What the till's first statement finds: the answer given before to the same
    Idempotency-Key of the same credential, the receipt stored before with the same source and
    external id, and the id of the receipt's outlet."""

    answer: Answer | None
    receipt_id: int | None
    outlet_id: int | None


def look_up(session: Session, principal: str, idempotency_key: str, data: ReceiptIn) -> Lookup:
    """The earlier answer, the stored receipt and the outlet, in one statement."""
    row = session.execute(
        _LOOKUP,
        {
            "principal": principal,
            "key": idempotency_key,
            "source": data.source,
            "external_id": data.external_id,
            "code": data.store,
        },
    ).one()
    answer = (
        Answer(row.request_hash, row.status_code, row.body)
        if row.request_hash is not None
        else None
    )
    return Lookup(answer, row.receipt_id, row.outlet_id)


_ANSWERS = cast(Table, IdempotentResponse.__table__)
_PROBE = select(literal(1).label("one")).subquery()
_LOOKUP = select(
    _ANSWERS.c.request_hash,
    _ANSWERS.c.status_code,
    _ANSWERS.c.body,
    Receipt.__table__.c.id.label("receipt_id"),
    Outlet.__table__.c.id.label("outlet_id"),
).select_from(
    _PROBE.outerjoin(
        _ANSWERS,
        and_(_ANSWERS.c.principal == bindparam("principal"), _ANSWERS.c.key == bindparam("key")),
    )
    .outerjoin(
        Receipt.__table__,
        and_(
            Receipt.__table__.c.source == bindparam("source"),
            Receipt.__table__.c.external_id == bindparam("external_id"),
        ),
    )
    .outerjoin(Outlet.__table__, Outlet.__table__.c.code == bindparam("code"))
)


def record_receipt(
    session: Session, data: ReceiptIn, *, looked_up: Lookup | None = None
) -> tuple[Receipt, bool]:
    """Store a receipt with its lines and its buyer; a receipt already stored is returned as is.
    `looked_up` is what `look_up` found for it, when the caller has asked already."""
    # Most receipts are new: look for the id first, load the whole receipt only when stored.
    existing_id = (
        looked_up.receipt_id
        if looked_up is not None
        else _receipt_id(session, data.source, data.external_id)
    )
    if existing_id is not None:
        return session.get_one(Receipt, existing_id), False
    settings = get_settings()
    if data.currency.upper() != settings.currency:
        raise InvalidInput(
            "currency", f"is {data.currency}; receipts are kept in {settings.currency}"
        )
    if data.purchased_at.tzinfo is None:
        raise InvalidInput("purchased_at", "needs a time zone, e.g. 2026-05-01T10:00:00+03:00")
    if data.purchased_at > utcnow() + timedelta(days=1):
        raise InvalidInput("purchased_at", "is in the future")
    outlet_id = (
        looked_up.outlet_id
        if looked_up is not None
        else session.scalar(_OUTLET_ID, {"code": data.store})
    )
    if outlet_id is None:
        raise InvalidInput("store", f"no outlet has the code {data.store!r}")
    skus = {line.sku for line in data.lines}
    products = {p.sku: p for p in session.scalars(_PRODUCTS, {"skus": sorted(skus)})}
    # Held for the rest of the unit of work (the identity map holds objects weakly), so that
    # loyalty's basket finds the receipt's products without loading them again.
    session.info[RECEIPT_PRODUCTS] = products
    lines: list[ReceiptLine] = []
    for i, line in enumerate(data.lines):
        place = f"lines[{i}]"
        product = products.get(line.sku) or _unknown_sku(session, line, place, settings.unknown_sku)
        products[line.sku] = product
        if line.quantity == 0:
            raise InvalidInput(f"{place}.quantity", "is zero")
        returns_id = None
        if line.quantity < 0:
            if not line.returns_receipt_id:
                raise InvalidInput(
                    f"{place}.returns_receipt_id", "a return names the receipt it returns from"
                )
            original = find_receipt(session, data.source, line.returns_receipt_id)
            if original is None:
                raise InvalidInput(
                    f"{place}.returns_receipt_id",
                    f"no receipt {line.returns_receipt_id!r} from {data.source}",
                )
            if all(ol.product_id != product.id for ol in original.lines):
                raise InvalidInput(
                    f"{place}.sku",
                    f"receipt {line.returns_receipt_id!r} has no {line.sku!r} to return",
                )
            returns_id = original.id
        elif line.returns_receipt_id:
            raise InvalidInput(
                f"{place}.quantity", "a line that names a returned receipt has a negative quantity"
            )
        total = _line_total(line, place)
        lines.append(
            ReceiptLine(
                line_no=i + 1,
                product_id=product.id,
                quantity=float(line.quantity),
                unit_price_cents=cents(line.unit_price),
                discount_cents=cents(line.discount),
                line_total_cents=total,
                cost_cents=round(product.cost_cents * float(line.quantity))
                if product.cost_cents is not None
                else None,
                returns_receipt_id=returns_id,
            )
        )
    buyer = resolve_buyer(
        session,
        [(i.kind, i.value, f"identifiers[{n}]") for n, i in enumerate(data.identifiers)],
        receipt_ref=f"{data.source}:{data.external_id}",
        when_date=data.purchased_at.date(),
    )
    receipt = Receipt(
        source=data.source,
        external_id=data.external_id,
        purchased_at=data.purchased_at,
        outlet_id=outlet_id,
        customer_id=buyer.customer_id,
        identified_by=buyer.identified_by,
        identifiers=buyer.identifiers,
        currency=settings.currency,
        total_cents=sum(line.line_total_cents for line in lines),
        created_at=utcnow(),
        import_file=None,
        import_line=None,
    )
    _insert(session, receipt, lines)
    return receipt, True


_RECEIPT = cast(Table, Receipt.__table__)
_LINE = cast(Table, ReceiptLine.__table__)
_RECEIPT_COLUMNS = [column.key for column in _RECEIPT.c if column.key != "id"]
_LINE_COLUMNS = [column.key for column in _LINE.c if column.key != "id"]
_INSERT_RECEIPT = insert(_RECEIPT).returning(_RECEIPT.c.id)
_INSERT_LINES = insert(_LINE).returning(_LINE.c.id, sort_by_parameter_order=True)
_LINE_VALUES = [key for key in _LINE_COLUMNS if key != "receipt_id"]
"""A line's own columns: on PostgreSQL one array each, beside the receipt's new id."""


def _insert_receipt_and_lines() -> Insert:
    """The receipt and its lines in one statement (PostgreSQL only): the receipt's INSERT in a
    data-modifying CTE, the lines from one array per column, so that the statement is the same
    whatever the number of lines. Returns each line's id, line number and the receipt's id."""
    stored = (
        insert(_RECEIPT)
        .values({key: bindparam(key, type_=_RECEIPT.c[key].type) for key in _RECEIPT_COLUMNS})
        .returning(_RECEIPT.c.id)
        .cte("stored")
    )
    rows = (
        func.unnest(*[bindparam(key, type_=ARRAY(_LINE.c[key].type)) for key in _LINE_VALUES])
        .table_valued(*_LINE_VALUES)
        .render_derived()
    )
    lines = (
        select(stored.c.id, *[rows.c[key] for key in _LINE_VALUES])
        .select_from(stored)
        .join(rows, true())
    )
    return (
        insert(_LINE)
        .from_select(["receipt_id", *_LINE_VALUES], lines)
        .returning(_LINE.c.id, _LINE.c.line_no, _LINE.c.receipt_id)
    )


_INSERT_RECEIPT_AND_LINES = _insert_receipt_and_lines()


def _insert(session: Session, receipt: Receipt, lines: list[ReceiptLine]) -> None:
    """INSERT the receipt and its lines (one statement on PostgreSQL, two elsewhere, returning
    their ids) and attach them to the session as stored: the ORM's unit of work costs the till
    more than the inserts."""
    values = {key: getattr(receipt, key) for key in _RECEIPT_COLUMNS}
    if lines and session.get_bind().dialect.name == "postgresql":
        arrays = {key: [getattr(line, key) for line in lines] for key in _LINE_VALUES}
        rows = session.execute(_INSERT_RECEIPT_AND_LINES, {**values, **arrays}).all()
        by_number = {row.line_no: row.id for row in rows}
        receipt.id = rows[0].receipt_id
        for line in lines:
            line.receipt_id, line.id = receipt.id, by_number[line.line_no]
    else:
        receipt.id = session.execute(_INSERT_RECEIPT, values).scalar_one()
        for line in lines:
            line.receipt_id = receipt.id
        if lines:
            ids = session.execute(
                _INSERT_LINES,
                [{key: getattr(line, key) for key in _LINE_COLUMNS} for line in lines],
            ).scalars()
            for line, line_id in zip(lines, ids, strict=True):
                line.id = line_id
    for stored in (receipt, *lines):
        make_transient_to_detached(stored)
    set_committed_value(receipt, "lines", lines)
    session.add(receipt)


def _unknown_sku(session: Session, line: ReceiptLineIn, place: str, policy: str) -> Product:
    if policy != "create":
        raise InvalidInput(f"{place}.sku", f"no product has the sku {line.sku!r}")
    product = Product(
        sku=line.sku,
        name=line.sku,
        department="unknown",
        product_group="unknown",
        price_cents=cents(line.unit_price),
        attributes={"created_by": "intake"},
    )
    session.add(product)
    session.flush()
    return product


def get_receipt(session: Session, receipt_id: int) -> Receipt:
    receipt = session.get(Receipt, receipt_id) if 0 < receipt_id < 2**63 else None
    if receipt is None:
        raise NotFound(f"receipt {receipt_id} does not exist")
    return receipt


def receipts_of(
    session: Session, customer_id: int, *, limit: int = 100, offset: int = 0
) -> Sequence[Receipt]:
    """The customer's receipts, newest first."""
    customer = customers.get_customer(session, customer_id)
    return session.scalars(
        select(Receipt)
        .where(Receipt.customer_id == customer.id)
        .order_by(Receipt.purchased_at.desc(), Receipt.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
