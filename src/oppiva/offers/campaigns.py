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
from itertools import repeat
from typing import Any, NamedTuple, cast

import numpy as np
from sqlalchemy import Table, func, insert, select, update
from sqlalchemy.orm import Session

from oppiva.customers.models import Customer
from oppiva.db import utcnow
from oppiva.errors import Conflict, InvalidInput, NotFound
from oppiva.offers import allocation, bulk, relevance
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
CODE_LENGTH = 12
"""Characters of a coupon code: 32^12 = 2^60 codes, so that a chain issuing 5 M coupons a week
meets a clash with one of a year's 250 M earlier codes about once in a thousand runs (the run's
transaction undoes it and running it again draws new codes); with 10 characters it would be
about once a run."""
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
    """A coupon code nobody can guess: `CODE_LENGTH` characters without look-alikes (0/O, 1/I)."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


_ALPHABET = np.frombuffer(CODE_ALPHABET.encode(), dtype=np.uint8)


def new_codes(n: int) -> list[str]:
    """`n` distinct codes like `new_code`'s, from one draw of the system's random bytes: each
    byte's low 5 bits pick one of the 32 characters, so every character is equally likely."""
    codes: list[str] = []
    seen: set[str] = set()
    while len(codes) < n:
        want = n - len(codes)
        raw = np.frombuffer(secrets.token_bytes(want * CODE_LENGTH), dtype=np.uint8) & 31
        text = _ALPHABET[raw].tobytes().decode("ascii")
        for i in range(0, want * CODE_LENGTH, CODE_LENGTH):
            code = text[i : i + CODE_LENGTH]
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

    def __init__(
        self,
        campaign: OfferCampaign,
        spent_cents: int = 0,
        per_product: Mapping[int, int] | None = None,
    ) -> None:
        self.campaign = campaign
        self.spent_cents = spent_cents
        self.per_product: Counter[int] = Counter(per_product or {})
        self.funded = set(campaign.supplier_funded)

    @classmethod
    def of(cls, session: Session, campaign: OfferCampaign) -> Ledger:
        """The totals of the coupons the campaign has issued so far."""
        spent = session.scalar(
            select(func.coalesce(func.sum(Coupon.expected_cost_cents), 0)).where(
                Coupon.campaign_id == campaign.id, Coupon.supplier_funded.is_(False)
            )
        )
        per_product = session.execute(
            select(Coupon.product_id, func.count())
            .where(Coupon.campaign_id == campaign.id)
            .group_by(Coupon.product_id)
        ).all()
        return cls(campaign, int(spent or 0), {r[0]: r[1] for r in per_product})

    def cost_of(self, price_cents: int) -> int:
        """A coupon's expected cost for a product of this price: its discount times the
        expected redemption share."""
        return round(
            price_cents * self.campaign.discount_percent / 100 * self.campaign.expected_redemption
        )

    def cost_cents(self, c: Candidate) -> int:
        """The coupon's expected cost: its discount times the expected redemption share."""
        return self.cost_of(c.price_cents)

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


def lock_campaign(session: Session, key: str) -> OfferCampaign:
    """The campaign, after a write on its row first in the transaction: two runs or picks of
    one campaign take turns (PostgreSQL holds the row lock, as `SELECT ... FOR UPDATE` would, to
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


NO_LIMIT = 2**62
"""A product without a limit or stock: more coupons than any run issues."""


@dataclass(frozen=True, slots=True)
class _RowFacts:
    """The product facts of each candidate row the allocation takes, as arrays."""

    group: allocation.Ints
    cost_cents: allocation.Ints
    funded: allocation.Bools
    issued: allocation.Ints
    """Coupons of the product issued so far (earlier runs and chunks)."""
    limit: allocation.Ints
    """The fewer of the product's limit and its stock."""
    restricted: allocation.Bools
    """The product has a requirement, an audience or an age limit."""


class _Products:
    """The product facts a candidate needs, read once per product for the whole run."""

    def __init__(self, session: Session, ledger: Ledger) -> None:
        self.session = session
        self.ledger = ledger
        self.facts: dict[int, tuple[str, str, str, int, Mapping[str, Any]]] = {}
        self.params: dict[str | None, Mapping[str, Any]] = {}
        """Reason parameters by their JSON text: decoded once, shared read-only."""
        self.groups: dict[str, int] = {}

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

    def decoded(self, text: str | None) -> Mapping[str, Any]:
        decoded = self.params.get(text)
        if decoded is None:
            decoded = self.params[text] = json.loads(text) if text else {}
        return decoded

    def candidate(self, rows: bulk.CandidateRows, i: int) -> Candidate:
        """Row `i` as the candidate `fit` takes."""
        product_id = int(rows.product[i])
        sku, name, group, price, attributes = self.facts[product_id]
        kind = CandidateKind.KNOWN.value if rows.known[i] else CandidateKind.NEW.value
        return Candidate(
            product_id,
            sku,
            name,
            group,
            price,
            attributes,
            kind,
            int(rows.rank[i]),
            float(rows.score[i]),
            str(rows.reason[i]),
            self.decoded(rows.params[i]),
        )

    def row_facts(self, product: allocation.Ints) -> _RowFacts:
        """The facts of each row's product, with the ledger's counts as they are now."""
        ids, inverse = np.unique(product, return_inverse=True)
        self.need(ids.tolist())
        facts = [self.facts[i] for i in ids.tolist()]
        campaign = self.ledger.campaign
        limits, stock = campaign.product_limits, campaign.stock
        return _RowFacts(
            group=np.array(
                [self.groups.setdefault(f[2], len(self.groups)) for f in facts], np.int64
            )[inverse],
            cost_cents=np.array([self.ledger.cost_of(f[3]) for f in facts], np.int64)[inverse],
            funded=np.array([f[0] in self.ledger.funded for f in facts], bool)[inverse],
            issued=np.array([self.ledger.per_product[i] for i in ids.tolist()], np.int64)[inverse],
            limit=np.array(
                [min(limits.get(f[0], NO_LIMIT), stock.get(f[0], NO_LIMIT)) for f in facts],
                np.int64,
            )[inverse],
            restricted=np.array(
                [
                    bool(relevance.requirements(f[4])) or f[4].get("age_limit") is not None
                    for f in facts
                ],
                bool,
            )[inverse],
        )


def _refusals(
    session: Session, campaign: OfferCampaign, customer_ids: Sequence[int], at: datetime
) -> dict[int, str]:
    """`contact_refusal` of many customers in a few queries: the refused ones and why."""
    refused: dict[int, str] = {}
    no_offers = privacy.preference_many(session, customer_ids, Preference.NO_OFFERS, at)
    rest = [i for i in customer_ids if not no_offers[i]]
    refused.update((i, "no_offers") for i in customer_ids if no_offers[i])
    purposes = (Purpose.PROFILING, Purpose.PERSONALISED_OFFERS)
    decisions = privacy.can_contact_many_for(session, rest, purposes, campaign.channel, at)
    refused.update((i, "no_consent") for i in rest if not all(decisions[p][i] for p in purposes))
    return refused


class _Allocation:
    """One run's allocation, chunk by chunk: the candidates of all the chunk's customers at once
    (`allocation.allocate`), the customers from the first one a campaign-wide rule (budget,
    product limit, stock) touches on one at a time with `fit`, as the rules need."""

    def __init__(
        self, session: Session, campaign: OfferCampaign, as_of: date, on: date, now: datetime
    ) -> None:
        self.session = session
        self.campaign = campaign
        self.as_of = as_of
        self.on = max(on, campaign.valid_from)
        self.now = now
        self.ledger = Ledger.of(session, campaign)
        self.products = _Products(session, self.ledger)
        self.writer = bulk.CouponWriter(session)
        self.refused: Counter[str] = Counter()
        self.slots = {
            CandidateKind.KNOWN.value: campaign.known_per_customer,
            CandidateKind.NEW.value: campaign.new_per_customer,
        }
        # Most customers fill their slots from the first ranks; the rest get their whole lists.
        self.prefix = {kind: n + 1 for kind, n in self.slots.items() if n > 0}
        self.total = sum(self.slots.values())
        self.explanations: dict[tuple[str, str | None, str], str] = {}

    def _outcomes(
        self, rows: bulk.CandidateRows, facts: _RowFacts, profiles: Mapping[int, relevance.Profile]
    ) -> allocation.Outcomes:
        excluded = np.zeros(rows.customer.size, bool)
        for i in np.flatnonzero(facts.restricted).tolist():
            attributes = self.products.facts[int(rows.product[i])][4]
            profile = profiles[int(rows.customer[i])]
            excluded[i] = relevance.exclusion(attributes, profile, self.on) is not None
        slots = (self.slots[CandidateKind.KNOWN.value], self.slots[CandidateKind.NEW.value])
        return allocation.allocate(
            rows.customer,
            rows.product,
            rows.known,
            facts.group,
            excluded,
            slots,
            self.campaign.max_per_group,
        )

    def chunk(
        self,
        eligible: Sequence[int],
        profiles: Mapping[int, relevance.Profile],
        languages: Mapping[int, str],
    ) -> int:
        """Allocate and write the coupons of these customers (in id order); their number."""
        ids = np.asarray(eligible, np.int64)
        rows = bulk.read_candidates(self.session, eligible, self.as_of, self.prefix)
        facts = self.products.row_facts(rows.product)
        outcome = self._outcomes(rows, facts, profiles)
        got = np.bincount(np.searchsorted(ids, rows.customer), weights=outcome == allocation.CHOSEN)
        unfilled = ids[np.r_[got, np.zeros(ids.size - got.size)] < self.total]
        if unfilled.size:
            whole = bulk.read_candidates(self.session, unfilled.tolist(), self.as_of, None)
            rows = bulk.merge(rows.take(~np.isin(rows.customer, unfilled)), whole)
            facts = self.products.row_facts(rows.product)
            outcome = self._outcomes(rows, facts, profiles)
        chosen = np.flatnonzero(outcome == allocation.CHOSEN)
        cut = allocation.first_refusal(
            rows.product[chosen],
            facts.cost_cents[chosen],
            facts.funded[chosen],
            facts.issued[chosen],
            facts.limit[chosen],
            self.ledger.spent_cents,
            self.campaign.budget_cents,
        )
        late = ids[ids >= rows.customer[chosen[cut]]] if cut < chosen.size else ids[:0]
        settled = ~np.isin(rows.customer, late)
        looked = outcome[settled]
        self.refused["relevance"] += int((looked == allocation.RELEVANCE).sum())
        self.refused["diversity"] += int((looked == allocation.DIVERSITY).sum())
        picked = chosen[settled[chosen]]
        paid = picked[~facts.funded[picked]]
        self.ledger.spent_cents += int(facts.cost_cents[paid].sum())
        products, counts = np.unique(rows.product[picked], return_counts=True)
        self.ledger.per_product.update(dict(zip(products.tolist(), counts.tolist(), strict=True)))
        parts = [(rows, facts, picked)]
        if late.size:
            parts.append(self._one_by_one(late.tolist(), profiles))
        coupons = self._coupons(parts, languages)
        self.writer.write(coupons)
        return len(coupons)

    def _one_by_one(
        self, customer_ids: list[int], profiles: Mapping[int, relevance.Profile]
    ) -> tuple[bulk.CandidateRows, _RowFacts, allocation.Ints]:
        """`fit` customer by customer on their whole lists, the ledger taking each coupon; the
        rows chosen."""
        rows = bulk.read_candidates(self.session, customer_ids, self.as_of, None)
        facts = self.products.row_facts(rows.product)
        starts = [*np.searchsorted(rows.customer, customer_ids).tolist(), rows.customer.size]
        issued: list[int] = []
        for n, customer_id in enumerate(customer_ids):
            at = range(starts[n], starts[n + 1])
            candidates = [self.products.candidate(rows, i) for i in at]
            row_of = {id(c): i for c, i in zip(candidates, at, strict=True)}
            mine: Counter[str] = Counter()
            profile = profiles[customer_id]
            chosen = fit(
                self.ledger, profile, candidates, self.slots, self.on, set(), Counter(), mine
            )
            self.refused.update(mine)
            for c in chosen:
                self.ledger.take(c)
                issued.append(row_of[id(c)])
        return rows, facts, np.array(issued, np.int64)

    def _coupons(
        self,
        parts: list[tuple[bulk.CandidateRows, _RowFacts, allocation.Ints]],
        languages: Mapping[int, str],
    ) -> list[tuple[Any, ...]]:
        """The chosen rows as coupon rows in `bulk.COUPON_COLUMNS` order, each with a new code
        and its explanation; built column by column."""
        customer = np.concatenate([rows.customer[i] for rows, _, i in parts]).tolist()
        if not customer:
            return []
        known = np.concatenate([rows.known[i] for rows, _, i in parts])
        reasons = np.concatenate([rows.reason[i] for rows, _, i in parts]).tolist()
        texts = np.concatenate([rows.params[i] for rows, _, i in parts]).tolist()
        language = [languages[c] for c in customer]
        value, decoded = self.writer.value, self.products.decoded
        explanations = self.explanations
        explanation = []
        for key in zip(reasons, texts, language, strict=True):
            said = explanations.get(key)
            if said is None:
                said = explanations[key] = explain(key[0], decoded(key[1]), key[2])[:300]
            explanation.append(said)
        funded = {f: value("supplier_funded", f) for f in (False, True)}
        campaign, n = self.campaign, len(customer)
        return list(
            zip(
                new_codes(n),
                repeat(campaign.id, n),
                customer,
                np.concatenate([rows.product[i] for rows, _, i in parts]).tolist(),
                np.where(known, CandidateKind.KNOWN.value, CandidateKind.NEW.value).tolist(),
                repeat("mailing", n),
                repeat(campaign.discount_percent, n),
                np.concatenate([facts.cost_cents[i] for _, facts, i in parts]).tolist(),
                [funded[f] for f in np.concatenate([f.funded[i] for _, f, i in parts]).tolist()],
                reasons,
                [value("reason_params", decoded(t), t) for t in texts],
                language,
                explanation,
                repeat(value("status", CouponStatus.ISSUED.value), n),
                repeat(value("valid_until", campaign.valid_until), n),
                repeat(value("issued_at", self.now), n),
                strict=True,
            )
        )


def run_campaign(session: Session, key: str, on: date | None = None) -> RunSummary:
    """Allocate coupons to every customer of the audience not yet in the campaign."""
    campaign = lock_campaign(session, key)
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
    run = _Allocation(session, campaign, as_of, today, now)
    refused: Counter[str] = Counter()
    with bulk.large_cache(session):
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
            languages = {i: offer_language(people[i][1]) for i in eligible}
            summary.coupons += run.chunk(eligible, profiles, languages)
    campaign.last_run_at = now
    summary.refused.update(refused + run.refused)
    spent = session.scalar(
        select(func.coalesce(func.sum(Coupon.expected_cost_cents), 0)).where(
            Coupon.campaign_id == campaign.id
        )
    )
    summary.expected_cost_eur = Decimal(int(spent or 0)) / 100
    session.flush()
    return summary
