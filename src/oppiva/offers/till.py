"""Till offers: what to offer for the next visit, from the last 8 weeks and the current basket.

Everything heavy is done by `oppiva offers train` (the customer's candidates with their due
dates, each product's neighbours); at the till one query checks who may get offers, one reads
the candidates and the basket's neighbours, one the purchases of the window, and cheap rules in
Python pick and order the offers. The statements are built once, at import.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import (
    String,
    Table,
    and_,
    bindparam,
    exists,
    func,
    literal_column,
    null,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.orm import Session

from oppiva.config import Settings, get_settings
from oppiva.customers.models import Customer, CustomerStatus
from oppiva.db import UTCDateTime, utcnow
from oppiva.errors import InvalidInput
from oppiva.offers import relevance
from oppiva.offers.explain import TEMPLATES, explain
from oppiva.offers.models import OfferCandidate, OfferNeighbour
from oppiva.privacy.models import (
    PREFERENCE_DEFAULTS,
    ConsentEvent,
    ConsentStatus,
    Preference,
    PreferenceEvent,
    Purpose,
)
from oppiva.purchases.models import Product, Receipt, ReceiptLine


class TillKind:
    """Where a till offer comes from, in the order the offers take turns."""

    DUE = "due"  # a product the customer buys regularly, due by the next visit
    BASKET = "basket"  # a product bought with what is in the basket now
    NEW = "new"  # a product the customer has not bought, from the batch's candidates


ORDER = (TillKind.DUE, TillKind.BASKET, TillKind.NEW)


@dataclass(frozen=True, slots=True)
class TillOffer:
    """One offer for the next visit, with the sentence that explains it."""

    product_id: int
    sku: str
    name: str
    product_group: str
    kind: str
    reason: str
    reason_params: dict[str, Any]
    explanation: str
    due_on: date | None
    score: float


@dataclass(frozen=True, slots=True)
class TillOffers:
    """The offers for a customer at the till; `refusal` says why there are none, when so."""

    customer_id: int | None
    offers: list[TillOffer]
    refusal: str | None = None
    """`off` (the setting is 0), `anonymous`, `not_active` (erased or merged), `no_offers`,
    `no_consent`; none when there is simply nothing to offer (or no such customer)."""


# --- the statements, built once ---

_CUSTOMER = cast(Table, Customer.__table__)
_CONSENT = cast(Table, ConsentEvent.__table__)
_PREFERENCE = cast(Table, PreferenceEvent.__table__)
_CANDIDATE = cast(Table, OfferCandidate.__table__)
_NEIGHBOUR = cast(Table, OfferNeighbour.__table__)
_PRODUCT = cast(Table, Product.__table__)
_RECEIPT = cast(Table, Receipt.__table__)
_LINE = cast(Table, ReceiptLine.__table__)
_AT = bindparam("at", type_=UTCDateTime())


def _preference(name: Preference) -> Any:
    """The value of a preference in effect at `at` (NULL: never set, so its default)."""
    p = _PREFERENCE
    return (
        select(p.c.value)
        .where(p.c.customer_id == _CUSTOMER.c.id, p.c.name == name.value, p.c.effective_at <= _AT)
        .order_by(p.c.effective_at.desc(), p.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )


def _granted(purpose: Purpose) -> Any:
    """Whether the decision in effect at `at` is `granted` on at least one channel: an offer at
    the till reaches the customer in person, so no one channel is the right one."""
    event = _CONSENT.alias(f"granted_{purpose.value}")
    later = _CONSENT.alias(f"later_{purpose.value}")
    overridden = exists().where(
        later.c.customer_id == event.c.customer_id,
        later.c.purpose == event.c.purpose,
        later.c.channel == event.c.channel,
        later.c.effective_at <= _AT,
        or_(
            later.c.effective_at > event.c.effective_at,
            and_(later.c.effective_at == event.c.effective_at, later.c.id > event.c.id),
        ),
    )
    return exists().where(
        event.c.customer_id == _CUSTOMER.c.id,
        event.c.purpose == purpose.value,
        event.c.status == ConsentStatus.GRANTED.value,
        event.c.effective_at <= _AT,
        ~overridden,
    )


_GATE = select(
    _CUSTOMER.c.status,
    _CUSTOMER.c.language,
    _CUSTOMER.c.birthday,
    _preference(Preference.NO_OFFERS).label("no_offers"),
    _preference(Preference.REMEMBER_ME).label("remember_me"),
    _granted(Purpose.PROFILING).label("profiling"),
    _granted(Purpose.PERSONALISED_OFFERS).label("personalised_offers"),
).where(_CUSTOMER.c.id == bindparam("customer"))

_OWN = (
    select(
        _CANDIDATE.c.kind.label("source"),
        _CANDIDATE.c.product_id,
        _CANDIDATE.c.score,
        _CANDIDATE.c.due_on,
        _CANDIDATE.c.reason,
        _CANDIDATE.c.reason_params,
        null().label("basket_product"),
        _PRODUCT.c.sku,
        _PRODUCT.c.name,
        _PRODUCT.c.product_group,
        _PRODUCT.c.attributes,
    )
    .join_from(_CANDIDATE, _PRODUCT, _PRODUCT.c.id == _CANDIDATE.c.product_id)
    .where(
        _CANDIDATE.c.customer_id == bindparam("customer"),
        or_(_CANDIDATE.c.kind == "new", _CANDIDATE.c.due_on <= bindparam("due_by")),
    )
)
_BASKET_PRODUCT = _PRODUCT.alias("basket_product")
_NEAR = (
    select(
        literal_column(f"'{TillKind.BASKET}'").label("source"),
        _NEIGHBOUR.c.neighbour_id,
        _NEIGHBOUR.c.score,
        null(),
        literal_column("'bought_with'"),
        null(),
        _BASKET_PRODUCT.c.name,
        _PRODUCT.c.sku,
        _PRODUCT.c.name,
        _PRODUCT.c.product_group,
        _PRODUCT.c.attributes,
    )
    .join_from(_NEIGHBOUR, _PRODUCT, _PRODUCT.c.id == _NEIGHBOUR.c.neighbour_id)
    .join(_BASKET_PRODUCT, _BASKET_PRODUCT.c.id == _NEIGHBOUR.c.product_id)
    .where(_NEIGHBOUR.c.product_id.in_(bindparam("basket", expanding=True)))
)
_OPTIONS = union_all(_OWN, _NEAR).subquery("options")
_GATE_ROW = _GATE.subquery("gate")
# One statement: every option with the customer's facts beside it. No options, no offers, so
# the gate costs nothing more; an unknown customer joins no gate row.
_OFFERS = select(_GATE_ROW, _OPTIONS).select_from(_OPTIONS.join(_GATE_ROW, true()))

_LAST_BOUGHT = (
    select(_LINE.c.product_id, func.max(_RECEIPT.c.purchased_at).label("last"))
    .join_from(_RECEIPT, _LINE, _LINE.c.receipt_id == _RECEIPT.c.id)
    .where(
        _RECEIPT.c.customer_id == bindparam("customer"),
        _RECEIPT.c.purchased_at >= bindparam("since", type_=UTCDateTime()),
        _RECEIPT.c.purchased_at <= _AT,
        _LINE.c.quantity > 0,
        _LINE.c.product_id.in_(bindparam("products", expanding=True)),
    )
    .group_by(_LINE.c.product_id)
)

_ATTRIBUTES_TEXT = _PRODUCT.c.attributes.cast(String)
_SIGNALS = select(_PRODUCT.c.attributes).where(
    _PRODUCT.c.id.in_(
        select(_LINE.c.product_id)
        .join_from(_RECEIPT, _LINE, _LINE.c.receipt_id == _RECEIPT.c.id)
        .where(_RECEIPT.c.customer_id == bindparam("customer"), _LINE.c.quantity > 0)
    ),
    or_(_ATTRIBUTES_TEXT.like('%"requires"%'), _ATTRIBUTES_TEXT.like('%"audience"%')),
)

_SKUS = select(_PRODUCT.c.sku, _PRODUCT.c.id).where(
    _PRODUCT.c.sku.in_(bindparam("skus", expanding=True))
)


# --- the rules ---


def products_of_skus(session: Session, skus: Sequence[str], field: str = "basket") -> list[int]:
    """The ids of a basket's SKUs, in order; an unknown SKU is refused naming its place."""
    found: dict[str, int] = {
        sku: product_id for sku, product_id in session.execute(_SKUS, {"skus": sorted(set(skus))})
    }
    for i, sku in enumerate(skus):
        if sku not in found:
            raise InvalidInput(f"{field}[{i}]", f"no product has the sku {sku!r}")
    return [found[sku] for sku in skus]


def _refusal(gate: Any) -> str | None:
    """Why the customer may get no offers: not active, "no offers", or no consent to profiling
    and personalised offers (or "remember me" off)."""
    if gate.status != CustomerStatus.ACTIVE:
        return "not_active"
    no_offers = (
        PREFERENCE_DEFAULTS[Preference.NO_OFFERS] if gate.no_offers is None else gate.no_offers
    )
    if no_offers:
        return "no_offers"
    remember = (
        PREFERENCE_DEFAULTS[Preference.REMEMBER_ME]
        if gate.remember_me is None
        else gate.remember_me
    )
    if not (remember and gate.profiling and gate.personalised_offers):
        return "no_consent"
    return None


@dataclass(slots=True)
class _Option:
    """A product one source suggests, before the rules pick among them."""

    kind: str
    product_id: int
    sku: str
    name: str
    product_group: str
    attributes: Mapping[str, Any]
    score: float
    reason: str
    reason_params: dict[str, Any]
    due_on: date | None = None


def checkout_offers(
    session: Session,
    customer_id: int | None,
    basket: Sequence[int] = (),
    at: datetime | None = None,
    limit: int | None = None,
    settings: Settings | None = None,
) -> TillOffers:
    """Offers for the customer's next visit: products due by then that were bought in the
    last 8 weeks, products that go with the basket and new products from the batch's
    candidates, taking turns in that order; never a product in the basket, none the
    relevance rules exclude, at most `till_max_per_group` per product group."""
    settings = settings or get_settings()
    count = settings.till_offers if limit is None else limit
    if count < 0:
        raise InvalidInput("limit", "must be 0 or more")
    if count == 0:
        return TillOffers(customer_id, [], "off")
    if customer_id is None:
        return TillOffers(None, [], "anonymous")
    at = at or utcnow()
    today = at.astimezone(ZoneInfo(settings.timezone)).date()
    due_by = today + timedelta(days=settings.till_due_days)
    in_basket = set(basket)
    rows = session.execute(
        _OFFERS,
        {"customer": customer_id, "at": at, "due_by": due_by, "basket": sorted(in_basket)},
    ).all()
    if not rows:
        return TillOffers(customer_id, [])
    gate = rows[0]
    why = _refusal(gate)
    if why is not None:
        return TillOffers(customer_id, [], why)
    options = _options(rows, in_basket)
    options[TillKind.DUE] = _still_due(
        session, customer_id, options[TillKind.DUE], at, today, due_by, settings
    )
    language = gate.language if gate.language in TEMPLATES else "en"
    chosen = _pick(session, customer_id, gate.birthday, options, in_basket, count, today, settings)
    return TillOffers(
        customer_id,
        [
            TillOffer(
                product_id=o.product_id,
                sku=o.sku,
                name=o.name,
                product_group=o.product_group,
                kind=o.kind,
                reason=o.reason,
                reason_params=o.reason_params,
                explanation=explain(o.reason, o.reason_params, language),
                due_on=o.due_on,
                score=round(o.score, 6),
            )
            for o in chosen
        ],
    )


def _options(rows: Sequence[Any], in_basket: set[int]) -> dict[str, list[_Option]]:
    """Each source's options, best first (ties by product id); a basket neighbour found from
    several basket products adds their scores and names the two strongest."""
    options: dict[str, list[_Option]] = {kind: [] for kind in ORDER}
    near: dict[int, _Option] = {}
    drivers: dict[int, list[tuple[float, str]]] = {}
    for row in rows:
        if row.product_id in in_basket:
            continue
        if row.source == TillKind.BASKET:
            option = near.get(row.product_id)
            if option is None:
                option = near[row.product_id] = _Option(
                    TillKind.BASKET,
                    row.product_id,
                    row.sku,
                    row.name,
                    row.product_group,
                    row.attributes or {},
                    0.0,
                    "bought_with",
                    {},
                )
            option.score += float(row.score)
            drivers.setdefault(row.product_id, []).append((float(row.score), row.basket_product))
            continue
        kind = TillKind.DUE if row.source == "known" else TillKind.NEW
        params = dict(row.reason_params or {})
        options[kind].append(
            _Option(
                kind,
                row.product_id,
                row.sku,
                row.name,
                row.product_group,
                row.attributes or {},
                float(row.score),
                "due" if kind == TillKind.DUE else row.reason,
                params,
                row.due_on,
            )
        )
    for product_id, option in near.items():
        names = sorted(drivers[product_id], key=lambda d: (-d[0], d[1]))
        option.reason_params = {"products": [name for _, name in names[:2]]}
    options[TillKind.BASKET] = list(near.values())
    for found in options.values():
        found.sort(key=lambda o: (-o.score, o.product_id))
    return options


def _still_due(
    session: Session,
    customer_id: int,
    due: list[_Option],
    at: datetime,
    today: date,
    due_by: date,
    settings: Settings,
) -> list[_Option]:
    """The known products bought within the window whose next purchase is still due by
    `due_by`: a purchase since the batch moves the due date on by the customer's cycle."""
    if not due:
        return []
    since = at - timedelta(days=settings.till_window_days)
    zone = ZoneInfo(settings.timezone)
    found = session.execute(
        _LAST_BOUGHT,
        {
            "customer": customer_id,
            "since": since,
            "at": at,
            "products": sorted({o.product_id for o in due}),
        },
    )
    last: dict[int, datetime] = {product_id: bought for product_id, bought in found}
    kept = []
    for option in due:
        bought = last.get(option.product_id)
        if bought is None:
            continue
        cycle = option.reason_params.get("days")
        due_on = option.due_on or today
        if cycle is not None:
            due_on = max(due_on, bought.astimezone(zone).date() + timedelta(days=round(cycle)))
        if due_on <= due_by:
            option.due_on = due_on
            kept.append(option)
    return kept


def _pick(
    session: Session,
    customer_id: int,
    birthday: date | None,
    options: Mapping[str, list[_Option]],
    in_basket: set[int],
    count: int,
    today: date,
    settings: Settings,
) -> list[_Option]:
    """The sources take turns (due, basket, new), each giving its best option that passes the
    rules, until `count` offers are chosen or every source is used up."""
    chosen: list[_Option] = []
    taken: set[int] = set(in_basket)
    groups: dict[str, int] = {}
    profile: relevance.Profile | None = None
    queues = {kind: list(reversed(options[kind])) for kind in ORDER}
    while len(chosen) < count and any(queues.values()):
        for kind in ORDER:
            queue = queues[kind]
            while queue and len(chosen) < count:
                option = queue.pop()
                if option.product_id in taken:
                    continue
                if groups.get(option.product_group, 0) >= settings.till_max_per_group:
                    continue
                needs = relevance.requirements(option.attributes)
                if needs and profile is None:
                    profile = _profile(session, customer_id, birthday)
                fits = relevance.exclusion(
                    option.attributes, profile or relevance.Profile({}, birthday), today
                )
                if fits is not None:
                    continue
                taken.add(option.product_id)
                groups[option.product_group] = groups.get(option.product_group, 0) + 1
                chosen.append(option)
                break
    return chosen


def _profile(session: Session, customer_id: int, birthday: date | None) -> relevance.Profile:
    """The relevance profile (stated attributes over purchase signals), read only when an
    option needs a customer attribute: the customer's products that need or aim at something."""
    signals: dict[str, bool] = {}
    for (attributes,) in session.execute(_SIGNALS, {"customer": customer_id}):
        signals.update(dict.fromkeys(relevance.requirements(attributes), True))
    stated = relevance.stated(session, [customer_id])[customer_id]
    return relevance.Profile({**signals, **stated}, birthday)
