"""Till offers: what to offer for the next visit, from the last 8 weeks and the current basket.

Everything heavy is done by `oppiva offers train` (the customer's candidates with their due
dates, each product's neighbours). At the till one indexed query reads the customer's status
with the candidates and the basket's neighbours; one reads consent, preferences and stated
attributes (skipped by the receipt's answer when there is nothing to offer), and, only when
there is something to offer, one the customer's purchases (each product's last purchase, and
the purchase signals for relevance). Cheap rules in Python pick and order the offers. The statements are built once, at import, and are simple to plan."""

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
    case,
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
from oppiva.errors import InvalidInput, NotFound
from oppiva.offers import relevance
from oppiva.offers.explain import explain, offer_language
from oppiva.offers.models import CustomerAttribute, OfferCandidate, OfferNeighbour
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
NEW_PER_OFFER = 4
"""New candidates read per offer asked for, best first: relevance and diversity skip some."""


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
    """`off` (the setting is 0), `anonymous`, `no_offers`, `no_consent`; none when there is
    simply nothing to offer."""


# --- the statements, built once ---

_CUSTOMER = cast(Table, Customer.__table__)
_CONSENT = cast(Table, ConsentEvent.__table__)
_PREFERENCE = cast(Table, PreferenceEvent.__table__)
_CANDIDATE = cast(Table, OfferCandidate.__table__)
_NEIGHBOUR = cast(Table, OfferNeighbour.__table__)
_PRODUCT = cast(Table, Product.__table__)
_RECEIPT = cast(Table, Receipt.__table__)
_LINE = cast(Table, ReceiptLine.__table__)
_ATTRIBUTE = cast(Table, CustomerAttribute.__table__)
_AT = bindparam("at", type_=UTCDateTime())


def _flag(column: Any) -> Any:
    """A boolean column as the text 'true' or 'false', to share a column with text."""
    return case((column, "true"), else_="false")


# What may the customer get: consent decisions, preferences and stated attributes, each row
# (kind, name, channel, value, at, id); resolved in Python (the latest per name wins).
_EVENTS = union_all(
    select(
        literal_column("'consent'").label("kind"),
        _CONSENT.c.purpose.label("name"),
        _CONSENT.c.channel.label("channel"),
        _CONSENT.c.status.label("value"),
        _CONSENT.c.effective_at.label("at"),
        _CONSENT.c.id,
    ).where(
        _CONSENT.c.customer_id == bindparam("customer"),
        _CONSENT.c.purpose.in_([Purpose.PROFILING.value, Purpose.PERSONALISED_OFFERS.value]),
        _CONSENT.c.effective_at <= _AT,
    ),
    select(
        literal_column("'preference'"),
        _PREFERENCE.c.name,
        literal_column("''"),
        _flag(_PREFERENCE.c.value),
        _PREFERENCE.c.effective_at,
        _PREFERENCE.c.id,
    ).where(
        _PREFERENCE.c.customer_id == bindparam("customer"),
        _PREFERENCE.c.name.in_([p.value for p in Preference]),
        _PREFERENCE.c.effective_at <= _AT,
    ),
    select(
        literal_column("'attribute'"),
        _ATTRIBUTE.c.name,
        literal_column("''"),
        _flag(_ATTRIBUTE.c.value),
        _ATTRIBUTE.c.set_at,
        _ATTRIBUTE.c.id,
    ).where(_ATTRIBUTE.c.customer_id == bindparam("customer")),
)

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
        or_(
            and_(_CANDIDATE.c.kind == "new", _CANDIDATE.c.rank <= bindparam("new_ranks")),
            _CANDIDATE.c.due_on <= bindparam("due_by"),
        ),
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
# The customer's facts with every option beside them (one row of nulls when there is none): no
# row, no such customer.
_OFFERS = (
    select(
        _OPTIONS,
        _CUSTOMER.c.status,
        _CUSTOMER.c.merged_into_id,
        _CUSTOMER.c.language,
        _CUSTOMER.c.birthday,
    )
    .select_from(_CUSTOMER.outerjoin(_OPTIONS, true()))
    .where(_CUSTOMER.c.id == bindparam("customer"))
)

# Each product the customer ever bought (up to `at`), its last purchase, and its attributes
# when it needs or aims at something (a purchase signal for relevance). Aggregated first, then
# joined to the products, so it reads the customer's lines and nothing else.
_BOUGHT = (
    select(_LINE.c.product_id, func.max(_RECEIPT.c.purchased_at).label("last"))
    .join_from(_RECEIPT, _LINE, _LINE.c.receipt_id == _RECEIPT.c.id)
    .where(
        _RECEIPT.c.customer_id == bindparam("customer"),
        _RECEIPT.c.purchased_at <= _AT,
        _LINE.c.quantity > 0,
    )
    .group_by(_LINE.c.product_id)
    .subquery("bought")
)
_ATTRIBUTES_TEXT = _PRODUCT.c.attributes.cast(String)
_HISTORY = select(
    _BOUGHT.c.product_id,
    _BOUGHT.c.last,
    case(
        (
            or_(_ATTRIBUTES_TEXT.like('%"requires"%'), _ATTRIBUTES_TEXT.like('%"audience"%')),
            _PRODUCT.c.attributes,
        ),
        else_=null(),
    ).label("attributes"),
).select_from(_BOUGHT.join(_PRODUCT, _PRODUCT.c.id == _BOUGHT.c.product_id))

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


def _standing(
    session: Session, customer_id: int, at: datetime
) -> tuple[str | None, dict[str, bool]]:
    """Why the customer may get no offers ("no offers", or no consent in effect for profiling
    and personalised offers on any channel, or "remember me" off), and the stated attributes."""
    latest: dict[tuple[str, str, str], tuple[datetime, int, str]] = {}
    for kind, name, channel, value, moment, row_id in session.execute(
        _EVENTS, {"customer": customer_id, "at": at}
    ):
        key = (kind, name, channel)
        if key not in latest or (moment, row_id) > latest[key][:2]:
            latest[key] = (moment, row_id, value)
    flags = {
        name: value == "true"
        for (kind, name, _), (*_, value) in latest.items()
        if kind != "consent"
    }
    stated = {name: flags[name] for (kind, name, _) in latest if kind == "attribute"}
    preferences = {p: flags.get(p.value, default) for p, default in PREFERENCE_DEFAULTS.items()}
    if preferences[Preference.NO_OFFERS]:
        return "no_offers", stated
    granted = {
        name
        for (kind, name, _), (*_, value) in latest.items()
        if kind == "consent" and value == ConsentStatus.GRANTED.value
    }
    needed = {Purpose.PROFILING.value, Purpose.PERSONALISED_OFFERS.value}
    if not preferences[Preference.REMEMBER_ME] or not needed <= granted:
        return "no_consent", stated
    return None, stated


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
    why_none: bool = True,
) -> TillOffers:
    """Offers for the customer's next visit: products due by then that were bought in the
    last 8 weeks, products that go with the basket and new products from the batch's
    candidates, taking turns in that order; never a product in the basket, none the
    relevance rules exclude, at most `till_max_per_group` per product group. A customer merged
    into another gets the survivor's offers (under the survivor's id); an unknown or erased
    one is not found. With `why_none`, the refusal is told even when there would be nothing
    to offer (a till can ask for the missing consent), at the cost of a read."""
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
    seen: set[int] = set()
    while True:
        rows = session.execute(
            _OFFERS,
            {
                "customer": customer_id,
                "at": at,
                "due_by": due_by,
                "basket": sorted(in_basket),
                # the best new candidates only: enough for the rules to skip a few
                "new_ranks": NEW_PER_OFFER * count,
            },
        ).all()
        customer = rows[0] if rows else None
        if customer is None or customer.status == CustomerStatus.ERASED:
            raise NotFound(f"customer {customer_id} does not exist")
        if customer.status != CustomerStatus.MERGED or customer.merged_into_id is None:
            break
        seen.add(customer_id)
        customer_id = customer.merged_into_id
        if customer_id in seen:  # pragma: no cover - a merge never builds a cycle
            raise NotFound(f"customer {customer_id} is in a merge cycle")
    options = _options(rows, in_basket)
    if not why_none and not any(options.values()):
        return TillOffers(customer_id, [])
    why, stated = _standing(session, customer_id, at)
    if why is not None:
        return TillOffers(customer_id, [], why)
    history = _History(session, customer_id, at)
    options[TillKind.DUE] = _still_due(history, options[TillKind.DUE], at, today, due_by, settings)
    language = offer_language(customer.language)
    chosen = _pick(history, stated, customer.birthday, options, count, in_basket, today, settings)
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
        if row.product_id is None or row.product_id in in_basket:
            continue  # the row of a customer with nothing to offer, or a product in the basket
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


class _History:
    """The customer's purchases as the rules need them, read once and only when asked."""

    def __init__(self, session: Session, customer_id: int, at: datetime) -> None:
        self._session, self._customer_id, self._at = session, customer_id, at
        self._rows: list[Any] | None = None

    def rows(self) -> list[Any]:
        if self._rows is None:
            params = {"customer": self._customer_id, "at": self._at}
            self._rows = list(self._session.execute(_HISTORY, params))
        return self._rows

    def last_bought(self) -> dict[int, datetime]:
        return {row.product_id: row.last for row in self.rows()}

    def signals(self) -> dict[str, bool]:
        """Attributes the purchases suggest: a product needing or aimed at X was bought, so X."""
        found: dict[str, bool] = {}
        for row in self.rows():
            if row.attributes:
                found.update(dict.fromkeys(relevance.requirements(row.attributes), True))
        return found


def _still_due(
    history: _History,
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
    last = history.last_bought()
    kept = []
    for option in due:
        bought = last.get(option.product_id)
        if bought is None or bought < since:
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
    history: _History,
    stated: Mapping[str, bool],
    birthday: date | None,
    options: Mapping[str, list[_Option]],
    count: int,
    in_basket: set[int],
    today: date,
    settings: Settings,
) -> list[_Option]:
    """The sources take turns (due, basket, new), each giving its best option that passes the
    rules, until `count` offers are chosen or every source is used up."""
    chosen: list[_Option] = []
    taken: set[int] = set(in_basket)
    groups: dict[str, int] = {}
    profile = relevance.Profile(dict(stated), birthday)
    signals_read = False
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
                if relevance.requirements(option.attributes) and not signals_read:
                    # stated attributes win over the purchase signals
                    profile = relevance.Profile({**history.signals(), **stated}, birthday)
                    signals_read = True
                if relevance.exclusion(option.attributes, profile, today) is not None:
                    continue
                taken.add(option.product_id)
                groups[option.product_group] = groups.get(option.product_group, 0) + 1
                chosen.append(option)
                break
    return chosen
