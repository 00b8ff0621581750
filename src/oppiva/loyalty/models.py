"""Tables of loyalty: programmes, their members and the append-only points ledger.

Points are integers. The ledger is three tables that are only ever added to:

- `points_operation`: one row per request (earn, spend, reverse, expire, adjust), unique by
  (programme, kind, source, external id), so repeating a request finds its first result and
  writes nothing;
- `points_lot`: what an earning (or a positive adjustment) put in, with the moment it becomes
  spendable (`confirms_at`, after the return window) and the moment it expires;
- `points_movement`: points taken out of one lot by a spend, an expiry, a reversal or a
  negative adjustment.

A lot's remaining points are its points less the movements out of it; nothing is updated in
place. `membership.ledger_version` is the one counter bumped by every ledger write: the write
that takes the member's lock.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from oppiva.db import Base, UTCDateTime, utcnow

BigId = BigInteger().with_variant(Integer, "sqlite")


class ProgrammeKind(StrEnum):
    OPEN = "open"
    """Customers join (or are invited) and know they are members."""
    SILENT = "silent"
    """The business chooses whom to treat especially well; no card, no joining."""


class MembershipSource(StrEnum):
    JOIN = "join"
    INVITATION = "invitation"
    SILENT = "silent"
    SELECTED = "selected"
    """Enrolled by a silent programme's selection job."""


class MembershipStatus(StrEnum):
    ACTIVE = "active"
    DESELECTED = "deselected"
    """A silent programme's member who no longer matches its selection: kept, not treated."""


class LotKind(StrEnum):
    EARN = "earn"
    ADJUST = "adjust"


class OperationKind(StrEnum):
    EARN = "earn"
    SPEND = "spend"
    REVERSE = "reverse"
    EXPIRE = "expire"
    ADJUST = "adjust"


class MovementKind(StrEnum):
    SPEND = "spend"
    EXPIRE = "expire"
    REVERSE = "reverse"
    ADJUST = "adjust"


class Programme(Base):
    """A loyalty programme: open (joined) or silent (chosen by the business)."""

    __tablename__ = "loyalty_programme"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16), default=ProgrammeKind.OPEN)
    points_name: Mapped[str] = mapped_column(String(40), default="points")
    pending_days: Mapped[int] = mapped_column(Integer, default=14)
    """The return window: earned points become spendable this many days after the purchase."""
    expiry_months: Mapped[int] = mapped_column(Integer, default=24)
    last_member_number: Mapped[int] = mapped_column(Integer, default=0)
    rules: Mapped[str | None] = mapped_column(Text)
    """The earning rules as given (YAML or JSON, see `oppiva.loyalty.rules`); none earns nothing."""
    tiers: Mapped[str | None] = mapped_column(Text)
    """The tier definitions as JSON, lowest first (see `oppiva.loyalty.tiers`); none: no tiers."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Membership(Base):
    """A customer in a programme, with the member number shown to them."""

    __tablename__ = "loyalty_membership"
    __table_args__ = (
        UniqueConstraint("programme_id", "customer_id"),
        UniqueConstraint("programme_id", "member_number"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    programme_id: Mapped[int] = mapped_column(ForeignKey("loyalty_programme.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"), index=True)
    member_number: Mapped[int] = mapped_column(Integer)
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default=MembershipStatus.ACTIVE)
    source: Mapped[str] = mapped_column(String(16), default=MembershipSource.JOIN)
    ledger_version: Mapped[int] = mapped_column(Integer, default=0)
    """Bumped by every ledger write, which so holds the member's lock until it commits."""
    tier: Mapped[str | None] = mapped_column(String(40))
    """The key of the member's tier (see `oppiva.loyalty.tiers`); none below the lowest."""
    tier_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    tier_kept_until: Mapped[date | None] = mapped_column(Date)
    """The last business date the tier is kept without qualifying again."""


class PointsOperation(Base):
    """One ledger request as it was made; its (kind, source, external id) makes it idempotent."""

    __tablename__ = "points_operation"
    __table_args__ = (
        UniqueConstraint("programme_id", "kind", "source", "external_id"),
        Index("ix_points_operation_programme_id_customer_id", "programme_id", "customer_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    programme_id: Mapped[int] = mapped_column(ForeignKey("loyalty_programme.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"))
    kind: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(40))
    external_id: Mapped[str] = mapped_column(String(100))
    points: Mapped[int] = mapped_column(Integer)
    """As asked: positive, except a negative adjustment."""
    shortfall: Mapped[int] = mapped_column(Integer, default=0)
    """Points a reversal could not take back because they were already spent: the ledger caps
    a reversal at what the member has (see `oppiva.loyalty.ledger`)."""
    rule: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    staff: Mapped[str | None] = mapped_column(String(100))
    receipt_id: Mapped[int | None] = mapped_column(ForeignKey("receipt.id"))
    lot_id: Mapped[int | None] = mapped_column(ForeignKey("points_lot.id"), index=True)
    """The lot the operation is about: the one it created (earn, positive adjustment), the
    earning it reverses, or the lot it expired."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PointsLot(Base):
    """Points put in by one earning or positive adjustment; never changed afterwards."""

    __tablename__ = "points_lot"
    __table_args__ = (
        UniqueConstraint("programme_id", "kind", "source", "external_id"),
        Index("ix_points_lot_programme_id_customer_id", "programme_id", "customer_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    programme_id: Mapped[int] = mapped_column(ForeignKey("loyalty_programme.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"))
    kind: Mapped[str] = mapped_column(String(16), default=LotKind.EARN)
    points: Mapped[int] = mapped_column(Integer)
    earned_at: Mapped[datetime] = mapped_column(UTCDateTime)
    confirms_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    source: Mapped[str] = mapped_column(String(40))
    external_id: Mapped[str] = mapped_column(String(100))
    rule: Mapped[str | None] = mapped_column(Text)
    """The rule that earned the points, in words the member can read."""
    receipt_id: Mapped[int | None] = mapped_column(ForeignKey("receipt.id"), index=True)


class PointsMovement(Base):
    """Points taken out of one lot by one operation."""

    __tablename__ = "points_movement"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    operation_id: Mapped[int] = mapped_column(ForeignKey("points_operation.id"), index=True)
    programme_id: Mapped[int] = mapped_column(ForeignKey("loyalty_programme.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"))
    kind: Mapped[str] = mapped_column(String(16))
    points: Mapped[int] = mapped_column(Integer)
    lot_id: Mapped[int] = mapped_column(ForeignKey("points_lot.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class TierChange(Base):
    """One change of a member's tier: never changed afterwards."""

    __tablename__ = "loyalty_tier_change"
    __table_args__ = (
        Index("ix_loyalty_tier_change_programme_id_customer_id", "programme_id", "customer_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    programme_id: Mapped[int] = mapped_column(ForeignKey("loyalty_programme.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"))
    from_tier: Mapped[str | None] = mapped_column(String(40))
    to_tier: Mapped[str | None] = mapped_column(String(40))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    kept_until: Mapped[date | None] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(Text)


# --- rewards, redemptions and vouchers ---


class RewardKind(StrEnum):
    GOODS = "goods"
    """The business's own goods."""
    SERVICE = "service"
    EXPERIENCE = "experience"
    """A pleasure benefit: an evening, a visit, a treat."""
    PARTNER = "partner"
    """A partner's product; the partner is named."""


class VoucherStatus(StrEnum):
    ISSUED = "issued"
    USED = "used"
    CANCELLED = "cancelled"


class Reward(Base):
    """A reward of a programme's catalogue: what it costs in points, how many there are, who
    may redeem it, when, and how long its voucher is valid (see `oppiva.loyalty.rewards`)."""

    __tablename__ = "loyalty_reward"
    __table_args__ = (UniqueConstraint("programme_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    programme_id: Mapped[int] = mapped_column(ForeignKey("loyalty_programme.id"))
    key: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(16))
    partner: Mapped[str | None] = mapped_column(String(200))
    cost_points: Mapped[int] = mapped_column(Integer)
    stock: Mapped[int | None] = mapped_column(Integer)
    """Units offered in all (cancelled vouchers give theirs back); none: unlimited."""
    stock_left: Mapped[int | None] = mapped_column(Integer)
    """Units still to redeem; only ever lowered by an UPDATE that keeps it >= 0."""
    limit_per_member: Mapped[int | None] = mapped_column(Integer)
    limit_period_days: Mapped[int | None] = mapped_column(Integer)
    """The rolling window of the limit; none: the member's whole time in the programme."""
    tiers: Mapped[str | None] = mapped_column(Text)
    """JSON list of the tier keys the reward is exclusive to; none: every member."""
    options: Mapped[str | None] = mapped_column(Text)
    """JSON list of {key, name}: the benefits the member chooses one of; none: no choice."""
    available_from: Mapped[datetime | None] = mapped_column(UTCDateTime)
    available_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    voucher_days: Mapped[int] = mapped_column(Integer)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer, default=0)
    """Bumped by every redemption and cancellation of the reward: their lock."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Voucher(Base):
    """One redemption: the points it spent, the reward and option chosen, and the single-use
    code issued for it, until it is used at the till or cancelled."""

    __tablename__ = "loyalty_voucher"
    __table_args__ = (
        UniqueConstraint("programme_id", "source", "external_id"),
        Index("ix_loyalty_voucher_reward_id_customer_id", "reward_id", "customer_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    """Crockford base32 without hyphens, the last character a check character."""
    programme_id: Mapped[int] = mapped_column(ForeignKey("loyalty_programme.id"))
    reward_id: Mapped[int] = mapped_column(ForeignKey("loyalty_reward.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"), index=True)
    option: Mapped[str | None] = mapped_column(String(40))
    points: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(40))
    external_id: Mapped[str] = mapped_column(String(100))
    spend_operation_id: Mapped[int] = mapped_column(ForeignKey("points_operation.id"))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default=VoucherStatus.ISSUED)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    used_source: Mapped[str | None] = mapped_column(String(40))
    used_external_id: Mapped[str | None] = mapped_column(String(100))
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    cancel_operation_id: Mapped[int | None] = mapped_column(ForeignKey("points_operation.id"))
    """The adjustment that gave the points back."""


# --- clubs ---


class ClubMembershipSource(StrEnum):
    INTEREST = "interest"
    """The customer asked to join (at the till, on the web, by phone)."""
    SUGGESTION = "suggestion"
    """The customer accepted an invitation sent from the club's suggestions."""


class Club(Base):
    """A club (Kids Club, World of Wine, ...): members by their own choice, and a rule that
    suggests whom to invite from their purchases."""

    __tablename__ = "loyalty_club"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    purpose: Mapped[str] = mapped_column(String(32))
    """The consent purpose of the club's communications (`oppiva.privacy.models.Purpose`)."""
    suggestion: Mapped[str | None] = mapped_column(Text)
    """The suggestion rule as JSON (see `oppiva.loyalty.clubs`); none suggests nobody."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ClubMembership(Base):
    """One period of a customer in a club: leaving closes it, joining again opens a new one.
    No unique constraint, so a merge of two members never fails: the service reads one
    membership per customer."""

    __tablename__ = "loyalty_club_membership"
    __table_args__ = (
        Index("ix_loyalty_club_membership_club_id_customer_id", "club_id", "customer_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    club_id: Mapped[int] = mapped_column(ForeignKey("loyalty_club.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"), index=True)
    source: Mapped[str] = mapped_column(String(16), default=ClubMembershipSource.INTEREST)
    channels: Mapped[str] = mapped_column(String(100))
    """The channels consented to on joining, comma-separated."""
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime)
    left_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    left_reason: Mapped[str | None] = mapped_column(Text)


class ClubDecline(Base):
    """A customer said no to a club's invitation: the club never suggests them again."""

    __tablename__ = "loyalty_club_decline"
    __table_args__ = (
        Index("ix_loyalty_club_decline_club_id_customer_id", "club_id", "customer_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    club_id: Mapped[int] = mapped_column(ForeignKey("loyalty_club.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"), index=True)
    declined_at: Mapped[datetime] = mapped_column(UTCDateTime)
    source: Mapped[str] = mapped_column(String(100))


# --- top-customer events ---


class Rsvp(StrEnum):
    YES = "yes"
    NO = "no"
    MAYBE = "maybe"


class ValueMeasure(StrEnum):
    CLV = "clv"
    """The customer's lifetime value from the latest value analysis."""
    SPEND_12M = "spend_12m"
    """Net spend at the event's store over the 12 months before the ranking."""


class Event(Base):
    """An event for a store's best customers: whom to invite, how, and how many fit."""

    __tablename__ = "loyalty_event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    outlet_id: Mapped[int] = mapped_column(ForeignKey("outlet.id"), index=True)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    capacity: Mapped[int] = mapped_column(Integer)
    """Places for guests: yes-answers beyond it are refused."""
    invite_count: Mapped[int] = mapped_column(Integer)
    """How many of the best customers to invite."""
    purpose: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class EventGuest(Base):
    """An invited customer: the rank and value that invited them, their answer, their visit.
    No unique constraint, so a merge of two guests never fails: the service reads one."""

    __tablename__ = "loyalty_event_guest"
    __table_args__ = (
        Index("ix_loyalty_event_guest_event_id_customer_id", "event_id", "customer_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("loyalty_event.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"), index=True)
    rank: Mapped[int] = mapped_column(Integer)
    measure: Mapped[str] = mapped_column(String(16))
    value_cents: Mapped[int] = mapped_column(BigInteger)
    invited_at: Mapped[datetime] = mapped_column(UTCDateTime)
    rsvp: Mapped[str | None] = mapped_column(String(8))
    rsvp_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# --- silent programmes, budgets and behaviour ---


class BehaviourRecord(Base):
    """One behaviour event (feedback, referral, app installed, event attended) as it counted in
    one programme: the points its behaviour rules gave, part by rule, so caps can be counted.
    Unique by (programme, source, external id): repeating the event records nothing."""

    __tablename__ = "loyalty_behaviour"
    __table_args__ = (
        UniqueConstraint("programme_id", "source", "external_id"),
        Index("ix_loyalty_behaviour_programme_id_customer_id", "programme_id", "customer_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    programme_id: Mapped[int] = mapped_column(ForeignKey("loyalty_programme.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"))
    event: Mapped[str] = mapped_column(String(40))
    source: Mapped[str] = mapped_column(String(40))
    external_id: Mapped[str] = mapped_column(String(100))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    business_date: Mapped[date] = mapped_column(Date)
    points: Mapped[int] = mapped_column(Integer)
    parts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """Points per behaviour rule name, and the rules' explanations and notes."""
    lot_id: Mapped[int | None] = mapped_column(ForeignKey("points_lot.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SilentSettings(Base):
    """What makes a programme silent: whom it selects (a criteria expression over the latest
    analysis), the share held out as a control group, and its budget and targeted result."""

    __tablename__ = "loyalty_silent_settings"

    programme_id: Mapped[int] = mapped_column(ForeignKey("loyalty_programme.id"), primary_key=True)
    criteria: Mapped[str | None] = mapped_column(Text)
    control_percent: Mapped[int] = mapped_column(Integer, default=0)
    """Percent of the customers matching at selection held out, untreated, to compare with."""
    budget_cents: Mapped[int | None] = mapped_column(BigInteger)
    """The investment limit: benefits' cost plus points' value; none means no limit."""
    point_value_cents: Mapped[Decimal] = mapped_column(Numeric(12, 4), default=Decimal(0))
    target: Mapped[str] = mapped_column(String(16), default="control")
    """How the result is measured: `control` (members against the control group) or
    `baseline` (members against their own spend before selection)."""
    target_cents: Mapped[int | None] = mapped_column(BigInteger)
    """The extra spend the programme is meant to bring."""
    period_days: Mapped[int] = mapped_column(Integer, default=90)
    """The window of the baseline before selection."""
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Selection(Base):
    """One stint of a customer in a silent programme's selection, as a member or held out as
    control; `ended_at` is set when they stop matching. Never deleted."""

    __tablename__ = "loyalty_selection"
    __table_args__ = (
        Index("ix_loyalty_selection_programme_id_customer_id", "programme_id", "customer_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    programme_id: Mapped[int] = mapped_column(ForeignKey("loyalty_programme.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"))
    group: Mapped[str] = mapped_column(String(16))
    selected_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    analysis_run_id: Mapped[int | None] = mapped_column(Integer)


class Benefit(Base):
    """A benefit a silent programme can grant: discount, relationship or service, at a unit cost."""

    __tablename__ = "loyalty_benefit"
    __table_args__ = (UniqueConstraint("programme_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    programme_id: Mapped[int] = mapped_column(ForeignKey("loyalty_programme.id"))
    key: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    unit_cost_cents: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class BenefitGrant(Base):
    """A benefit given to a member, with its cost as it was then; unique by (source, external id)."""

    __tablename__ = "loyalty_benefit_grant"
    __table_args__ = (
        UniqueConstraint("programme_id", "source", "external_id"),
        Index("ix_loyalty_benefit_grant_programme_id_customer_id", "programme_id", "customer_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    programme_id: Mapped[int] = mapped_column(ForeignKey("loyalty_programme.id"))
    benefit_id: Mapped[int] = mapped_column(ForeignKey("loyalty_benefit.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"))
    quantity: Mapped[int] = mapped_column(Integer)
    cost_cents: Mapped[int] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(String(40))
    external_id: Mapped[str] = mapped_column(String(100))
    note: Mapped[str | None] = mapped_column(Text)
    staff: Mapped[str | None] = mapped_column(String(100))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime)


class BudgetSnapshot(Base):
    """A silent programme's investment and result as measured at one moment: the budget's history."""

    __tablename__ = "loyalty_budget_snapshot"
    __table_args__ = (Index("ix_loyalty_budget_snapshot_programme_id_at", "programme_id", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    programme_id: Mapped[int] = mapped_column(ForeignKey("loyalty_programme.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    members: Mapped[int] = mapped_column(Integer)
    benefits_cents: Mapped[int] = mapped_column(BigInteger)
    points_cents: Mapped[int] = mapped_column(BigInteger)
    result_cents: Mapped[int | None] = mapped_column(BigInteger)


class AccountMerge(Base):
    """An absorbed customer's membership folded into the survivor's in one programme by a
    customer merge: the absorbed membership as it was, and the survivor's tier before, so an
    unmerge restores both accounts exactly."""

    __tablename__ = "loyalty_account_merge"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    merge_id: Mapped[int] = mapped_column(ForeignKey("customer_merge.id"), index=True)
    programme_id: Mapped[int] = mapped_column(ForeignKey("loyalty_programme.id"))
    membership: Mapped[dict[str, Any]] = mapped_column(JSON)
    """The absorbed membership row, column by column (JSON-ready)."""
    survivor: Mapped[dict[str, Any]] = mapped_column(JSON)
    """The survivor's membership fields the merge may change (status, tier), as they were."""
    unmerged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
