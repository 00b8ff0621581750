"""Coupon campaigns as data, and the run that allocates coupons from the latest candidates.

A run walks the customers that have candidates (optionally only a saved segment's members
and/or those a criteria expression picks in the latest analysis), checks consent and the "no offers" preference, draws the holdout (a stable, seeded draw per
customer, so a repeated run puts everyone where they were), and gives each treatment customer
up to N known and M new products, skipping what relevance excludes and what the budget, the
per-product limits, the stock or the diversity rule (at most k per product group) forbid.
Every refusal is counted by its reason. A customer already in the campaign is left as they
are, so a run is idempotent; customers refused for consent are looked at again next time.

The run is set-based, 5,000 customers at a time: consent and "no offers" in a few queries per
chunk, the candidates of the chunk in one, members and coupons written with one executemany
each. It starts with a write on the campaign row, so two runs of one campaign take turns.
"""

from __future__ import annotations

import json
import random
import re
import secrets
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, NamedTuple, cast

import numpy as np
from sqlalchemy import String, Table, and_, func, insert, or_, select, update
from sqlalchemy import cast as cast_
from sqlalchemy.orm import Session

from oppiva.customers.models import Customer
from oppiva.db import utcnow
from oppiva.errors import Conflict, InvalidInput, NotFound
from oppiva.offers import relevance
from oppiva.offers.explain import explain, offer_language
from oppiva.offers.models import (
    CampaignGroup,
    CampaignMember,
    CandidateKind,
    Coupon,
    CouponStatus,
    OfferCampaign,
    OfferCandidate,
)
from oppiva.privacy import service as privacy
from oppiva.privacy.models import ContactChannel, Preference, Purpose
from oppiva.purchases.models import Product
from oppiva.segments import selection

KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
REFUSALS = (
    "no_consent",
    "no_offers",
    "relevance",
    "diversity",
    "product_limit",
    "stock",
    "budget",
)


@dataclass(frozen=True)
class CampaignDefinition:
    """Everything a campaign is made of; validated by `create_campaign`."""

    key: str
    name: str
    channel: str
    valid_from: date
    valid_until: date
    known_per_customer: int = 4
    new_per_customer: int = 2
    discount_percent: int = 20
    expected_redemption: float = 1.0
    budget_eur: Decimal | None = None
    max_per_group: int | None = None
    product_limits: Mapping[str, int] = field(default_factory=dict)
    stock: Mapping[str, int] = field(default_factory=dict)
    supplier_funded: Sequence[str] = ()
    holdout_share: float = 0.1
    holdout_seed: int = 0
    segment_key: str | None = None
    audience_criteria: str | None = None
    offers_shown: int = 15
    picks: int = 5


def _between(value: float, low: float, high: float, place: str) -> None:
    if not low <= value <= high:
        raise InvalidInput(place, f"must be between {low:g} and {high:g}, not {value:g}")


def _skus(session: Session, skus: Iterable[str], place: str) -> None:
    wanted = set(skus)
    known = set(session.scalars(select(Product.sku).where(Product.sku.in_(wanted))))
    missing = sorted(wanted - known)
    if missing:
        raise InvalidInput(place, f"unknown product {missing[0]!r}")


def create_campaign(session: Session, d: CampaignDefinition) -> OfferCampaign:
    """Store a new campaign after checking every field; a key in use is a conflict."""
    if not KEY.match(d.key):
        raise InvalidInput("key", "lower-case letters, digits, - and _ (at most 40)")
    if not d.name.strip():
        raise InvalidInput("name", "must not be empty")
    try:
        channel = ContactChannel(d.channel)
    except ValueError:
        known = ", ".join(c.value for c in ContactChannel)
        raise InvalidInput("channel", f"unknown channel {d.channel!r} (known: {known})") from None
    if d.valid_until < d.valid_from:
        raise InvalidInput("valid_until", "is before valid_from")
    _between(d.known_per_customer, 0, 20, "known_per_customer")
    _between(d.new_per_customer, 0, 20, "new_per_customer")
    if d.known_per_customer + d.new_per_customer == 0:
        raise InvalidInput("known_per_customer", "a campaign gives at least one coupon")
    _between(d.discount_percent, 1, 100, "discount_percent")
    if not 0 < d.expected_redemption <= 1:
        raise InvalidInput("expected_redemption", "must be above 0 and at most 1")
    if d.budget_eur is not None and d.budget_eur < 0:
        raise InvalidInput("budget_eur", "must not be negative")
    if d.max_per_group is not None:
        _between(d.max_per_group, 1, 100, "max_per_group")
    for name, limits in (("product_limits", d.product_limits), ("stock", d.stock)):
        for sku, n in limits.items():
            if not isinstance(n, int) or n < 0:
                raise InvalidInput(f"{name}.{sku}", "must be a whole number, 0 or more")
        _skus(session, limits, name)
    _skus(session, d.supplier_funded, "supplier_funded")
    _between(d.holdout_share, 0, 0.9, "holdout_share")
    _between(d.offers_shown, 1, 50, "offers_shown")
    _between(d.picks, 1, d.offers_shown, "picks")
    if d.segment_key is not None:
        from oppiva.segments import service as segments

        segments.get_segment(session, d.segment_key)
    criteria = None
    if d.audience_criteria is not None:
        criteria = selection.check_stored_criteria(d.audience_criteria, "audience_criteria")
    if session.scalar(select(OfferCampaign.id).where(OfferCampaign.key == d.key)) is not None:
        raise Conflict(f"campaign {d.key!r} exists already")
    budget = None if d.budget_eur is None else int((d.budget_eur * 100).to_integral_value())
    campaign = OfferCampaign(
        key=d.key,
        name=d.name.strip(),
        channel=channel.value,
        valid_from=d.valid_from,
        valid_until=d.valid_until,
        known_per_customer=d.known_per_customer,
        new_per_customer=d.new_per_customer,
        discount_percent=d.discount_percent,
        expected_redemption=d.expected_redemption,
        budget_cents=budget,
        max_per_group=d.max_per_group,
        product_limits=dict(d.product_limits),
        stock=dict(d.stock),
        supplier_funded=sorted(set(d.supplier_funded)),
        holdout_share=d.holdout_share,
        holdout_seed=d.holdout_seed,
        segment_key=d.segment_key,
        audience_criteria=criteria,
        offers_shown=d.offers_shown,
        picks=d.picks,
        created_at=utcnow(),
    )
    session.add(campaign)
    session.flush()
    return campaign


def get_campaign(session: Session, key: str) -> OfferCampaign:
    campaign = session.scalar(select(OfferCampaign).where(OfferCampaign.key == key))
    if campaign is None:
        raise NotFound(f"campaign {key!r} does not exist")
    return campaign


def list_campaigns(session: Session) -> list[tuple[OfferCampaign, int]]:
    """Every campaign with its number of coupons."""
    counts = dict(
        (r[0], r[1])
        for r in session.execute(
            select(Coupon.campaign_id, func.count()).group_by(Coupon.campaign_id)
        ).all()
    )
    campaigns = session.scalars(select(OfferCampaign).order_by(OfferCampaign.key))
    return [(c, counts.get(c.id, 0)) for c in campaigns]


def is_holdout(campaign: OfferCampaign, customer_id: int) -> bool:
    """The seeded draw: the same campaign seed and customer always land in the same group."""
    draw = random.Random(f"{campaign.holdout_seed}:{customer_id}").random()
    return draw < campaign.holdout_share


def contact_refusal(
    session: Session, campaign: OfferCampaign, customer_id: int, at: datetime
) -> str | None:
    """`no_offers` or `no_consent` when the customer may not get this campaign's coupons."""
    if privacy.preference(session, customer_id, Preference.NO_OFFERS, at):
        return "no_offers"
    for purpose in (Purpose.PROFILING, Purpose.PERSONALISED_OFFERS):
        if not privacy.can_contact(session, customer_id, purpose.value, campaign.channel, at):
            return "no_consent"
    return None


def new_code() -> str:
    """A coupon code nobody can guess: 10 characters without look-alikes (0/O, 1/I)."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(10))


_ALPHABET = np.frombuffer(CODE_ALPHABET.encode(), dtype=np.uint8)


def new_codes(n: int) -> list[str]:
    """`n` distinct codes like `new_code`'s, from one draw of the system's random bytes: each
    byte's low 5 bits pick one of the 32 characters, so every character is equally likely."""
    codes: list[str] = []
    seen: set[str] = set()
    while len(codes) < n:
        want = n - len(codes)
        raw = np.frombuffer(secrets.token_bytes(want * 10), dtype=np.uint8) & 31
        text = _ALPHABET[raw].tobytes().decode("ascii")
        for i in range(0, want * 10, 10):
            code = text[i : i + 10]
            if code not in seen:
                seen.add(code)
                codes.append(code)
    return codes


class Candidate(NamedTuple):
    """A candidate row with the product facts the constraints need (a tuple: a run makes
    millions)."""

    product_id: int
    sku: str
    product_name: str
    product_group: str
    price_cents: int
    attributes: Mapping[str, Any]
    kind: str
    rank: int
    score: float
    reason: str
    reason_params: Mapping[str, Any]


def latest_batch(session: Session) -> date | None:
    return session.scalar(select(func.max(OfferCandidate.as_of)))


def candidates_of(
    session: Session, customer_ids: Sequence[int], as_of: date
) -> dict[int, list[Candidate]]:
    """The batch's candidates of these customers, known then new, each by rank."""
    result: dict[int, list[Candidate]] = {i: [] for i in customer_ids}
    c = OfferCandidate
    for start in range(0, len(customer_ids), 500):
        chunk = customer_ids[start : start + 500]
        rows = session.execute(
            select(c, Product)
            .join(Product, Product.id == c.product_id)
            .where(c.as_of == as_of, c.customer_id.in_(chunk))
            .order_by(c.customer_id, c.kind, c.rank, c.id)
        ).all()
        for cand, product in rows:
            result[cand.customer_id].append(
                Candidate(
                    product_id=product.id,
                    sku=product.sku,
                    product_name=product.name,
                    product_group=product.product_group,
                    price_cents=product.price_cents,
                    attributes=product.attributes or {},
                    kind=cand.kind,
                    rank=cand.rank,
                    score=cand.score,
                    reason=cand.reason,
                    reason_params=cand.reason_params or {},
                )
            )
    return result


class Ledger:
    """The campaign's running totals (budget spent, coupons per product) while allocating."""

    def __init__(self, session: Session, campaign: OfferCampaign) -> None:
        self.campaign = campaign
        self.spent_cents = int(
            session.scalar(
                select(func.coalesce(func.sum(Coupon.expected_cost_cents), 0)).where(
                    Coupon.campaign_id == campaign.id, Coupon.supplier_funded.is_(False)
                )
            )
            or 0
        )
        self.per_product: Counter[int] = Counter(
            dict(
                (r[0], r[1])
                for r in session.execute(
                    select(Coupon.product_id, func.count())
                    .where(Coupon.campaign_id == campaign.id)
                    .group_by(Coupon.product_id)
                ).all()
            )
        )
        self.funded = set(campaign.supplier_funded)

    def cost_cents(self, c: Candidate) -> int:
        """The coupon's expected cost: its discount times the expected redemption share."""
        return round(
            c.price_cents * self.campaign.discount_percent / 100 * self.campaign.expected_redemption
        )

    def refusal(self, c: Candidate) -> str | None:
        """The campaign-wide constraint a coupon of this product would break, if any."""
        issued = self.per_product[c.product_id]
        limit = self.campaign.product_limits.get(c.sku)
        if limit is not None and issued >= limit:
            return "product_limit"
        units = self.campaign.stock.get(c.sku)
        if units is not None and issued >= units:
            return "stock"
        budget = self.campaign.budget_cents
        if (
            budget is not None
            and c.sku not in self.funded
            and self.spent_cents + self.cost_cents(c) > budget
        ):
            return "budget"
        return None

    def take(self, c: Candidate) -> None:
        self.per_product[c.product_id] += 1
        if c.sku not in self.funded:
            self.spent_cents += self.cost_cents(c)


def language_of(customer: Customer) -> str:
    return offer_language(customer.language)


def issue(
    session: Session,
    ledger: Ledger,
    customer: Customer,
    c: Candidate,
    source: str,
    at: datetime,
) -> Coupon:
    """Write one coupon with its code and its explanation in the customer's language."""
    campaign = ledger.campaign
    language = language_of(customer)
    coupon = Coupon(
        code=new_code(),
        campaign_id=campaign.id,
        customer_id=customer.id,
        product_id=c.product_id,
        kind=c.kind,
        source=source,
        discount_percent=campaign.discount_percent,
        expected_cost_cents=ledger.cost_cents(c),
        supplier_funded=c.sku in ledger.funded,
        reason=c.reason,
        reason_params=dict(c.reason_params),
        language=language,
        explanation=explain(c.reason, c.reason_params, language)[:300],
        status="issued",
        valid_until=campaign.valid_until,
        issued_at=at,
    )
    ledger.take(c)
    session.add(coupon)
    return coupon


@dataclass
class RunSummary:
    """What one run did: who was considered, the groups, the coupons and every refusal."""

    campaign: str
    candidates_as_of: date | None
    customers: int = 0
    already_in_campaign: int = 0
    treatment: int = 0
    holdout: int = 0
    coupons: int = 0
    expected_cost_eur: Decimal = Decimal(0)
    refused: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REFUSALS, 0))


def fit(
    ledger: Ledger,
    profile: relevance.Profile,
    candidates: Iterable[Candidate],
    slots: Mapping[str, int],
    on: date,
    held_products: set[int],
    held_groups: Counter[str],
    refused: Counter[str] | None = None,
) -> list[Candidate]:
    """The candidates that pass every constraint, up to `slots` per kind, in order; the refusals
    of those looked at are counted in `refused`. The ledger is not changed."""
    left = dict(slots)
    groups = Counter(held_groups)
    spent = ledger.spent_cents
    chosen: list[Candidate] = []
    k = ledger.campaign.max_per_group
    for c in candidates:
        if left.get(c.kind, 0) <= 0 or c.product_id in held_products:
            continue
        if any(c.product_id == x.product_id for x in chosen):
            continue
        reason: str | None
        if relevance.exclusion(c.attributes, profile, on) is not None:
            reason = "relevance"
        elif k is not None and groups[c.product_group] >= k:
            reason = "diversity"
        else:
            reason = ledger.refusal(c)
        if reason is not None:
            if refused is not None:
                refused[reason] += 1
            continue
        chosen.append(c)
        left[c.kind] -= 1
        groups[c.product_group] += 1
        ledger.take(c)
    ledger.spent_cents = spent  # undo the takes: cheaper than copying the per-product counts
    for c in chosen:
        ledger.per_product[c.product_id] -= 1
    return chosen


RUN_CHUNK = 5000
_INSERT_MEMBER = insert(cast(Table, CampaignMember.__table__))
_INSERT_COUPON = insert(cast(Table, Coupon.__table__))


def _lock_campaign(session: Session, key: str) -> OfferCampaign:
    """The campaign, after a write on its row first in the transaction: two runs of one
    campaign take turns (PostgreSQL holds the row lock, as `SELECT ... FOR UPDATE` would, to
    the commit; on SQLite the write takes the database's writer lock, and what the run reads
    next is what the previous run committed)."""
    session.execute(
        update(OfferCampaign)
        .where(OfferCampaign.key == key)
        .values(last_run_at=OfferCampaign.last_run_at)
        .execution_options(synchronize_session=False)
    )
    campaign = session.scalar(
        select(OfferCampaign)
        .where(OfferCampaign.key == key)
        .execution_options(populate_existing=True)
    )
    if campaign is None:
        raise NotFound(f"campaign {key!r} does not exist")
    return campaign


def audience(session: Session, campaign: OfferCampaign, as_of: date) -> list[int]:
    """The customers with candidates in the batch of `as_of`, narrowed to the campaign's
    segment and criteria when it has them, in id order."""
    query = select(OfferCandidate.customer_id).where(OfferCandidate.as_of == as_of).distinct()
    if campaign.segment_key is not None:
        from oppiva.segments import service as segments
        from oppiva.segments.models import SegmentMember

        segment = segments.get_segment(session, campaign.segment_key)
        query = query.where(
            OfferCandidate.customer_id.in_(
                select(SegmentMember.customer_id).where(SegmentMember.segment_id == segment.id)
            )
        )
    ids = sorted(session.scalars(query))
    if campaign.audience_criteria is not None:
        _, picked = selection.matching(session, campaign.audience_criteria)
        ids = [i for i in ids if i in picked]
    return ids


class _Products:
    """The product facts a candidate needs, read once per product for the whole run."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.facts: dict[int, tuple[str, str, str, int, Mapping[str, Any]]] = {}
        self.params: dict[str | None, Mapping[str, Any]] = {}
        """Reason parameters by their JSON text: decoded once, shared read-only."""

    def need(self, product_ids: Iterable[int]) -> None:
        unseen = sorted(set(product_ids) - self.facts.keys())
        p = Product
        for start in range(0, len(unseen), RUN_CHUNK):
            rows = self.session.connection().execute(
                select(p.id, p.sku, p.name, p.product_group, p.price_cents, p.attributes).where(
                    p.id.in_(unseen[start : start + RUN_CHUNK])
                )
            )
            for pid, sku, name, group, price, attributes in rows:
                self.facts[pid] = (sku, name, group, price, attributes or {})


def _chunk_candidates(
    session: Session,
    products: _Products,
    customer_ids: Sequence[int],
    as_of: date,
    max_rank: Mapping[str, int] | None,
) -> dict[int, list[Candidate]]:
    """`candidates_of` for one chunk in one query, read as plain rows; with `max_rank` only the
    ranks up to it of each kind (a prefix of each customer's known and new lists)."""
    c = OfferCandidate
    query = select(
        c.customer_id,
        c.product_id,
        c.kind,
        c.rank,
        c.score,
        c.reason,
        cast_(c.reason_params, String),
    ).where(c.as_of == as_of, c.customer_id.in_(customer_ids))
    if max_rank is not None:
        query = query.where(
            or_(*(and_(c.kind == kind, c.rank <= n) for kind, n in max_rank.items()))
        )
    rows = session.connection().execute(query.order_by(c.customer_id, c.kind, c.rank, c.id)).all()
    products.need(r[1] for r in rows)
    result: dict[int, list[Candidate]] = {i: [] for i in customer_ids}
    facts, params = products.facts, products.params
    for customer_id, product_id, kind, rank, score, reason, text in rows:
        sku, name, group, price, attributes = facts[product_id]
        decoded = params.get(text)
        if decoded is None:
            decoded = params[text] = json.loads(text) if text else {}
        result[customer_id].append(
            Candidate(
                product_id, sku, name, group, price, attributes, kind, rank, score, reason, decoded
            )
        )
    return result


def _refusals(
    session: Session, campaign: OfferCampaign, customer_ids: Sequence[int], at: datetime
) -> dict[int, str]:
    """`contact_refusal` of many customers in a few queries: the refused ones and why."""
    refused: dict[int, str] = {}
    no_offers = privacy.preference_many(session, customer_ids, Preference.NO_OFFERS, at)
    rest = [i for i in customer_ids if not no_offers[i]]
    refused.update((i, "no_offers") for i in customer_ids if no_offers[i])
    for purpose in (Purpose.PROFILING, Purpose.PERSONALISED_OFFERS):
        decisions = privacy.can_contact_many(session, rest, purpose.value, campaign.channel, at)
        refused.update((i, "no_consent") for i in rest if not decisions[i])
        rest = [i for i in rest if decisions[i]]
    return refused


def _coupon_row(
    ledger: Ledger, customer_id: int, language: str, c: Candidate, code: str, at: datetime
) -> dict[str, Any]:
    """The row `issue` would write, for an executemany."""
    campaign = ledger.campaign
    return {
        "code": code,
        "campaign_id": campaign.id,
        "customer_id": customer_id,
        "product_id": c.product_id,
        "kind": c.kind,
        "source": "mailing",
        "discount_percent": campaign.discount_percent,
        "expected_cost_cents": ledger.cost_cents(c),
        "supplier_funded": c.sku in ledger.funded,
        "reason": c.reason,
        "reason_params": dict(c.reason_params),
        "language": language,
        "explanation": explain(c.reason, c.reason_params, language)[:300],
        "status": CouponStatus.ISSUED.value,
        "valid_until": campaign.valid_until,
        "issued_at": at,
    }


def run_campaign(session: Session, key: str, on: date | None = None) -> RunSummary:
    """Allocate coupons to every customer of the audience not yet in the campaign."""
    campaign = _lock_campaign(session, key)
    now = utcnow()
    today = on or now.date()
    if today > campaign.valid_until:
        raise Conflict(f"campaign {key!r} ended on {campaign.valid_until.isoformat()}")
    as_of = latest_batch(session)
    summary = RunSummary(campaign=key, candidates_as_of=as_of)
    if as_of is None:
        return summary
    ids = audience(session, campaign, as_of)
    members = set(
        session.scalars(
            select(CampaignMember.customer_id).where(CampaignMember.campaign_id == campaign.id)
        )
    )
    summary.customers = len(ids)
    summary.already_in_campaign = len(members.intersection(ids))
    fresh = [i for i in ids if i not in members]
    ledger = Ledger(session, campaign)
    products = _Products(session)
    refused: Counter[str] = Counter()
    slots = {
        CandidateKind.KNOWN.value: campaign.known_per_customer,
        CandidateKind.NEW.value: campaign.new_per_customer,
    }
    # Most customers fill their slots from the first ranks; the rest get their whole lists.
    prefix = {kind: 2 * n + 2 for kind, n in slots.items() if n > 0}
    total = sum(slots.values())
    on_day = max(today, campaign.valid_from)
    for start in range(0, len(fresh), RUN_CHUNK):
        chunk = fresh[start : start + RUN_CHUNK]
        refusals = _refusals(session, campaign, chunk, now)
        refused.update(refusals.values())
        placed = [i for i in chunk if i not in refusals]
        held = {i for i in placed if is_holdout(campaign, i)}
        if placed:
            session.execute(
                _INSERT_MEMBER,
                [
                    {
                        "campaign_id": campaign.id,
                        "customer_id": i,
                        "group": (
                            CampaignGroup.HOLDOUT if i in held else CampaignGroup.TREATMENT
                        ).value,
                        "assigned_at": now,
                    }
                    for i in placed
                ],
            )
        summary.holdout += len(held)
        eligible = [i for i in placed if i not in held]
        summary.treatment += len(eligible)
        if not eligible:
            continue
        people = {
            r[0]: (r[1], r[2])
            for r in session.execute(
                select(Customer.id, Customer.birthday, Customer.language).where(
                    Customer.id.in_(eligible)
                )
            )
        }
        profiles = relevance.profiles(session, eligible, {i: people[i][0] for i in eligible})
        offered = _chunk_candidates(session, products, eligible, as_of, prefix)
        whole: dict[int, list[Candidate]] | None = None
        issued: list[tuple[int, str, Candidate]] = []
        for n, customer_id in enumerate(eligible):
            mine: Counter[str] = Counter()
            args = (ledger, profiles[customer_id])
            chosen = fit(*args, offered[customer_id], slots, on_day, set(), Counter(), mine)
            if len(chosen) < total:
                if whole is None:  # the rest of the chunk's customers, their whole lists
                    whole = _chunk_candidates(session, products, eligible[n:], as_of, None)
                mine = Counter()
                chosen = fit(*args, whole[customer_id], slots, on_day, set(), Counter(), mine)
            refused.update(mine)
            language = offer_language(people[customer_id][1])
            for c in chosen:
                ledger.take(c)
                issued.append((customer_id, language, c))
        codes = new_codes(len(issued))
        if issued:
            session.execute(
                _INSERT_COUPON,
                [
                    _coupon_row(ledger, i, language, c, code, now)
                    for (i, language, c), code in zip(issued, codes, strict=True)
                ],
            )
        summary.coupons += len(issued)
    campaign.last_run_at = now
    summary.refused.update(refused)
    spent = session.scalar(
        select(func.coalesce(func.sum(Coupon.expected_cost_cents), 0)).where(
            Coupon.campaign_id == campaign.id
        )
    )
    summary.expected_cost_eur = Decimal(int(spent or 0)) / 100
    session.flush()
    return summary
