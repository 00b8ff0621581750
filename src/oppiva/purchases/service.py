"""The purchase history: catalogue, outlets, receipts with identification at intake."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from oppiva.config import get_settings
from oppiva.customers import service as customers
from oppiva.customers.identities import NormalIdentity, keyed_hash, normalise, parse_kind
from oppiva.customers.models import Customer, CustomerStatus, Identity, IdentityKind
from oppiva.db import utcnow
from oppiva.errors import InvalidInput, NotFound
from oppiva.purchases.models import Outlet, Product, Receipt, ReceiptLine
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
    rows = session.execute(
        select(Identity.kind, Identity.value, Identity.customer_id).where(
            or_(*[(Identity.kind == n.kind.value) & (Identity.value == n.value) for n in normal])
        )
    ).all()
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
        owner = session.get_one(Customer, owners[0])
    else:
        people = [session.get_one(Customer, cid) for cid in owners]
        enrolled = [p for p in people if p.enrolled]
        if len(enrolled) > 1:
            # Two enrolled people behind one receipt (a shared card?): never merged automatically.
            first = next(n for n in ranked if (n.kind.value, n.value) in owner_of)
            owner = session.get_one(Customer, owner_of[(first.kind.value, first.value)])
            return _finish(session, buyer, owner, first, attach=[])
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
    return _finish(session, buyer, owner, ranked[0], attach=unknown)


def _finish(
    session: Session,
    buyer: Buyer,
    owner: Customer,
    by: NormalIdentity,
    attach: list[NormalIdentity],
) -> Buyer:
    from oppiva.privacy.service import is_remembered

    if not is_remembered(session, owner.id):
        # "Remember me" off: the purchase is kept for the books, not on the person.
        return buyer
    for ident in attach:
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
    buyer.customer_id = owner.id
    buyer.identified_by = by.kind.value
    return buyer


# Receipts ------------------------------------------------------------------------------------


def find_receipt(session: Session, source: str, external_id: str) -> Receipt | None:
    return session.scalar(
        select(Receipt).where(Receipt.source == source, Receipt.external_id == external_id)
    )


def _line_total(line: ReceiptLineIn, place: str) -> int:
    expected = cents(line.quantity * line.unit_price) - cents(line.discount)
    if line.line_total is not None and abs(cents(line.line_total) - expected) > 1:
        raise InvalidInput(
            f"{place}.line_total",
            f"is {line.line_total} but quantity × unit price − discount is {Decimal(expected) / 100}",
        )
    return cents(line.line_total) if line.line_total is not None else expected


def record_receipt(session: Session, data: ReceiptIn) -> tuple[Receipt, bool]:
    """Store a receipt with its lines and its buyer; a receipt already stored is returned as is."""
    existing = find_receipt(session, data.source, data.external_id)
    if existing is not None:
        return existing, False
    settings = get_settings()
    if data.currency.upper() != settings.currency:
        raise InvalidInput(
            "currency", f"is {data.currency}; receipts are kept in {settings.currency}"
        )
    if data.purchased_at.tzinfo is None:
        raise InvalidInput("purchased_at", "needs a time zone, e.g. 2026-05-01T10:00:00+03:00")
    if data.purchased_at > utcnow() + timedelta(days=1):
        raise InvalidInput("purchased_at", "is in the future")
    outlet = session.scalar(select(Outlet).where(Outlet.code == data.store))
    if outlet is None:
        raise InvalidInput("store", f"no outlet has the code {data.store!r}")
    skus = {line.sku for line in data.lines}
    products = {p.sku: p for p in session.scalars(select(Product).where(Product.sku.in_(skus)))}
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
        outlet_id=outlet.id,
        customer_id=buyer.customer_id,
        identified_by=buyer.identified_by,
        identifiers=buyer.identifiers,
        currency=settings.currency,
        total_cents=sum(line.line_total_cents for line in lines),
        lines=lines,
    )
    session.add(receipt)
    session.flush()
    return receipt, True


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
