"""HTTP routes of the purchase history: the till API, the catalogue, a customer's receipts."""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Annotated, cast

from fastapi import APIRouter, Depends, Header, Query, Response, status
from sqlalchemy import Table, insert, select

from oppiva.access.permissions import P
from oppiva.api.deps import DbSession
from oppiva.api.security import Access, require
from oppiva.customers.schemas import CustomerOut, IdentifyIn, IdentifyOut
from oppiva.customers.service import get_customer
from oppiva.db import MAX_ID, utcnow
from oppiva.errors import Forbidden, InvalidInput
from oppiva.loyalty.schemas import AccrualOut
from oppiva.loyalty.service import accrue_for_receipt
from oppiva.offers.schemas import TillOfferOut
from oppiva.offers.till import checkout_offers
from oppiva.purchases import service
from oppiva.purchases.models import IdempotentResponse, Outlet, Product, Receipt
from oppiva.purchases.schemas import (
    OutletIn,
    ProductIn,
    ReceiptDetailOut,
    ReceiptIn,
    ReceiptLineOut,
    ReceiptOut,
)

router = APIRouter(tags=["purchases"])
Reader = Annotated[Access, Depends(require(P.CUSTOMERS_READ))]
Catalogue = Annotated[Access, Depends(require(P.CATALOGUE_WRITE))]


@router.post("/receipts", response_model=ReceiptOut, status_code=status.HTTP_201_CREATED)
def post_receipt(
    body: ReceiptIn,
    session: DbSession,
    access: Annotated[Access, Depends(require(P.RECEIPTS_WRITE))],
    idempotency_key: Annotated[str, Header(min_length=1, max_length=200)],
) -> Response:
    """Store a receipt and identify its buyer. A repeat with the same `Idempotency-Key` (per
    credential) returns the first answer and writes nothing; so does the same source and id.
    The buyer's loyalty programmes earn by their rules, and a return takes back the returned
    share of the original purchase's points (see `oppiva.loyalty.service`)."""
    principal = access.principal
    if principal.store is not None and body.store != principal.store:
        raise Forbidden(f"this key is bound to another store than {body.store!r}")
    request_hash = hashlib.sha256(body.model_dump_json().encode()).hexdigest()
    found = service.look_up(session, principal.actor, idempotency_key, body)
    if found.answer is not None:
        if found.answer.request_hash != request_hash:
            raise InvalidInput("Idempotency-Key", "was used before for a different receipt")
        return _json(ReceiptOut.model_validate(found.answer.body), found.answer.status_code)
    receipt, created = service.record_receipt(session, body, looked_up=found)
    # A receipt stored before (another key) only reports what it earned: it writes nothing.
    accruals = accrue_for_receipt(session, receipt, record=created, fresh=created)
    basket = [line.product_id for line in receipt.lines if line.quantity > 0]
    offers = checkout_offers(
        session, receipt.customer_id, basket, receipt.purchased_at, why_none=False
    ).offers
    out = ReceiptOut(
        receipt_id=receipt.id,
        customer_id=receipt.customer_id,
        identified_by=receipt.identified_by,
        total=Decimal(receipt.total_cents) / 100,
        created=created,
        loyalty=[
            AccrualOut(
                programme=a.programme,
                points_earned=a.points_earned,
                points_reversed=a.points_reversed,
                balance_available=a.balance.available,
                balance_pending=a.balance.pending,
                tier=a.tier.tier,
                tier_message=a.tier.message or None,
            )
            for a in accruals
        ],
        offers=[TillOfferOut.model_validate(o) for o in offers],
    )
    status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    session.execute(
        _SAVE_ANSWER,
        {
            "principal": principal.actor,
            "key": idempotency_key,
            "request_hash": request_hash,
            "status_code": status_code,
            "body": out.model_dump(mode="json"),
            "created_at": utcnow(),
        },
    )
    access.audit(
        session,
        "receipt.create" if created else "receipt.repeat",
        [receipt.customer_id],
        receipt=receipt.id,
        offers=[o.sku for o in offers],
    )
    return _json(out, status_code)


_SAVE_ANSWER = insert(cast(Table, IdempotentResponse.__table__))


def _json(out: ReceiptOut, status_code: int) -> Response:
    """The answer serialised once by the model itself, not validated again on the way out."""
    return Response(out.model_dump_json(), status_code, media_type="application/json")


def _detail(session: DbSession, receipt: Receipt) -> ReceiptDetailOut:
    store = session.scalar(select(Outlet.code).where(Outlet.id == receipt.outlet_id)) or ""
    skus = dict(
        session.execute(
            select(Product.id, Product.sku).where(
                Product.id.in_({line.product_id for line in receipt.lines})
            )
        ).all()
    )
    return ReceiptDetailOut(
        id=receipt.id,
        source=receipt.source,
        external_id=receipt.external_id,
        purchased_at=receipt.purchased_at,
        store=store,
        customer_id=receipt.customer_id,
        identified_by=receipt.identified_by,
        currency=receipt.currency,
        total=Decimal(receipt.total_cents) / 100,
        lines=[
            ReceiptLineOut(
                line_no=line.line_no,
                sku=skus[line.product_id],
                quantity=line.quantity,
                unit_price=Decimal(line.unit_price_cents) / 100,
                discount=Decimal(line.discount_cents) / 100,
                line_total=Decimal(line.line_total_cents) / 100,
                returns_receipt_id=line.returns_receipt_id,
            )
            for line in receipt.lines
        ],
    )


@router.get("/receipts/{receipt_id}", response_model=ReceiptDetailOut)
def read_receipt(receipt_id: int, session: DbSession, access: Reader) -> ReceiptDetailOut:
    receipt = service.get_receipt(session, receipt_id)
    access.audit(session, "receipt.read", [receipt.customer_id], receipt=receipt.id)
    return _detail(session, receipt)


@router.get("/customers/{customer_id}/receipts", response_model=list[ReceiptDetailOut])
def customer_receipts(
    customer_id: int,
    session: DbSession,
    access: Reader,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> list[ReceiptDetailOut]:
    """The customer's purchase history, newest first."""
    receipts = service.receipts_of(session, customer_id, limit=limit, offset=offset)
    access.audit(session, "receipts.read", [customer_id])
    return [_detail(session, r) for r in receipts]


@router.post("/identify/link", response_model=IdentifyOut)
def link_identifiers(
    body: IdentifyIn, session: DbSession, access: Annotated[Access, Depends(require(P.IDENTIFY))]
) -> IdentifyOut:
    """A login (or any moment) that shows several identifiers of one person links them, with
    the rules of a receipt: unknown ones join the known customer, an anonymous profile folds
    into the enrolled one, unknown ones together make a recognised profile."""
    buyer = service.resolve_buyer(
        session,
        [(i.kind, i.value, f"identifiers[{n}]") for n, i in enumerate(body.identifiers)],
        receipt_ref=f"link by {access.principal.actor}",
    )
    access.audit(session, "customer.link", [buyer.customer_id], merged=buyer.merged)
    if buyer.customer_id is None:
        return IdentifyOut(customer=None)
    return IdentifyOut(
        customer=CustomerOut.model_validate(get_customer(session, buyer.customer_id))
    )


@router.put("/products/{sku}", response_model=dict[str, int | str])
def put_product(
    sku: str, body: ProductIn, session: DbSession, access: Catalogue
) -> dict[str, int | str]:
    if body.sku != sku:
        raise InvalidInput("sku", f"the body's sku {body.sku!r} differs from the path's {sku!r}")
    product = service.save_product(session, body)
    return {"id": product.id, "sku": product.sku}


@router.put("/outlets/{code}", response_model=dict[str, int | str])
def put_outlet(
    code: str, body: OutletIn, session: DbSession, access: Catalogue
) -> dict[str, int | str]:
    if body.code != code:
        raise InvalidInput(
            "code", f"the body's code {body.code!r} differs from the path's {code!r}"
        )
    outlet = service.save_outlet(session, body)
    return {"id": outlet.id, "code": outlet.code}
