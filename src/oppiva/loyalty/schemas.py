"""Shapes of loyalty at the edges: programmes, members, balances, statements, the till's part."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from oppiva.db import MAX_ID
from oppiva.loyalty import clubs, events
from oppiva.loyalty.clubs import SuggestionRule
from oppiva.loyalty.models import (
    Benefit,
    Club,
    ClubMembership,
    ClubMembershipSource,
    EventGuest,
    MembershipSource,
    Programme,
    Reward,
    Rsvp,
    SilentSettings,
)
from oppiva.loyalty.rewards import (
    Offer,
    RewardDefinition,
    RewardOption,
    options_of,
    tiers_of,
)
from oppiva.loyalty.silent import BudgetReport
from oppiva.loyalty.tiers import TierStatus
from oppiva.loyalty.vouchers import VoucherView
from oppiva.privacy.models import ContactChannel
from oppiva.schemas import InputModel


class AccrualOut(BaseModel):
    """What a receipt did in one of its customer's programmes, and the balance after it."""

    programme: str
    points_earned: int
    points_reversed: int = 0
    balance_available: int
    balance_pending: int
    tier: str | None = None
    tier_message: str | None = None


class ProgrammeOut(BaseModel):
    key: str
    name: str
    kind: str
    points_name: str
    pending_days: int
    expiry_months: int
    members: int
    has_rules: bool

    @classmethod
    def of(cls, programme: Programme, members: int) -> ProgrammeOut:
        return cls(
            key=programme.key,
            name=programme.name,
            kind=programme.kind,
            points_name=programme.points_name,
            pending_days=programme.pending_days,
            expiry_months=programme.expiry_months,
            members=members,
            has_rules=programme.rules is not None,
        )


class JoinIn(InputModel):
    customer_id: int = Field(ge=1, le=MAX_ID)
    source: MembershipSource = MembershipSource.JOIN


class MembershipOut(BaseModel):
    programme: str
    customer_id: int
    member_number: int
    joined_at: datetime
    status: str
    source: str


class BalanceOut(BaseModel):
    programme: str
    customer_id: int
    available: int
    pending: int
    earned: int
    spent: int
    expired: int
    reversed: int
    adjusted: int
    tier: str | None = None
    tier_since: datetime | None = None
    tier_kept_until: date | None = None
    tier_measure: Decimal | None = None
    next_tier: str | None = None
    next_tier_needed: Decimal | None = None
    tier_message: str | None = None


def tier_fields(status: TierStatus) -> dict[str, Any]:
    """The member's tier status as the balance's fields."""
    return {
        "tier": status.tier,
        "tier_since": status.since,
        "tier_kept_until": status.kept_until,
        "tier_measure": status.measure,
        "next_tier": status.next_tier,
        "next_tier_needed": status.needed,
        "tier_message": status.message or None,
    }


class StatementEntryOut(BaseModel):
    at: datetime
    kind: str
    points: int
    balance: int
    rule: str | None = None
    reason: str | None = None
    staff: str | None = None
    source: str
    external_id: str
    receipt_id: int | None = None
    confirms_at: datetime | None = None
    expires_at: datetime | None = None
    shortfall: int | None = None
    reward: str | None = None
    option: str | None = None
    voucher: str | None = None


# --- rewards, redemptions and vouchers ---


class RewardIn(RewardDefinition, InputModel):
    """A reward as PUT under its key (a key in the body, if given, must be the same)."""

    key: str = Field(default="", max_length=40)


class RewardOut(BaseModel):
    key: str
    name: str
    description: str | None
    kind: str
    partner: str | None
    cost_points: int
    stock: int | None
    stock_left: int | None
    limit_per_member: int | None
    limit_period_days: int | None
    tiers: list[str] | None
    options: list[RewardOption] | None
    available_from: datetime | None
    available_until: datetime | None
    voucher_days: int
    retired_at: datetime | None

    @classmethod
    def of(cls, reward: Reward) -> RewardOut:
        return cls(
            key=reward.key,
            name=reward.name,
            description=reward.description,
            kind=reward.kind,
            partner=reward.partner,
            cost_points=reward.cost_points,
            stock=reward.stock,
            stock_left=reward.stock_left,
            limit_per_member=reward.limit_per_member,
            limit_period_days=reward.limit_period_days,
            tiers=tiers_of(reward) or None,
            options=options_of(reward) or None,
            available_from=reward.available_from,
            available_until=reward.available_until,
            voucher_days=reward.voucher_days,
            retired_at=reward.retired_at,
        )


class OfferOut(BaseModel):
    """A reward as one member sees it: may they redeem it now, and why not otherwise."""

    reward: RewardOut
    redeemable: bool
    reasons: list[str]
    points_needed: int

    @classmethod
    def of(cls, offer: Offer) -> OfferOut:
        return cls(
            reward=RewardOut.of(offer.reward),
            redeemable=offer.redeemable,
            reasons=offer.reasons,
            points_needed=offer.points_needed,
        )


class RedemptionIn(InputModel):
    reward: str = Field(min_length=1, max_length=40)
    option: str | None = Field(default=None, min_length=1, max_length=40)
    source: str = Field(min_length=1, max_length=40)
    external_id: str = Field(min_length=1, max_length=100)


class VoucherOut(BaseModel):
    code: str
    status: str
    programme: str
    customer_id: int
    reward: str
    reward_name: str
    option: str | None
    option_name: str | None
    points: int
    issued_at: datetime
    expires_at: datetime
    used_at: datetime | None
    used_on: str | None
    cancelled_at: datetime | None
    cancel_reason: str | None

    @classmethod
    def of(cls, voucher: VoucherView) -> VoucherOut:
        return cls(**vars(voucher))


class VoucherCheckOut(BaseModel):
    """The till's answer: valid, unknown, mistyped, used, expired or cancelled."""

    verdict: str
    message: str
    voucher: VoucherOut | None


class VoucherUseIn(InputModel):
    """The receipt the voucher is used on."""

    source: str = Field(min_length=1, max_length=40)
    external_id: str = Field(min_length=1, max_length=100)


class VoucherCancelIn(InputModel):
    reason: str = Field(min_length=1, max_length=10_000)


# --- clubs ---


class ClubIn(InputModel):
    """A club's definition; the key is in the path."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=r"^\S(.*\S)?$")
    description: str | None = Field(default=None, max_length=2000)
    purpose: Literal["marketing", "personalised_offers"] = "marketing"
    suggest: SuggestionRule | None = None


class ClubOut(BaseModel):
    key: str
    name: str
    description: str | None
    purpose: str
    suggest: dict[str, Any] | None
    members: int

    @classmethod
    def of(cls, club: Club, members: int) -> ClubOut:
        rule = clubs.definition(club).suggest
        return cls(
            key=club.key,
            name=club.name,
            description=club.description,
            purpose=club.purpose,
            suggest=rule.model_dump(mode="json", exclude_defaults=True) if rule else None,
            members=members,
        )


class ClubJoinIn(InputModel):
    customer_id: int = Field(ge=1, le=MAX_ID)
    channels: list[ContactChannel] = Field(min_length=1, max_length=len(ContactChannel))
    source: str = Field(min_length=1, max_length=100, description="Where the customer joined.")
    how: ClubMembershipSource = ClubMembershipSource.INTEREST


class ClubDeclineIn(InputModel):
    customer_id: int = Field(ge=1, le=MAX_ID)
    source: str = Field(min_length=1, max_length=100, description="Where they said no.")


class ClubMembershipOut(BaseModel):
    club: str
    customer_id: int
    joined_at: datetime
    source: str
    channels: list[str]
    left_at: datetime | None = None
    left_reason: str | None = None

    @classmethod
    def of(cls, club: str, membership: ClubMembership) -> ClubMembershipOut:
        return cls(
            club=club,
            customer_id=membership.customer_id,
            joined_at=membership.joined_at,
            source=membership.source,
            channels=membership.channels.split(","),
            left_at=membership.left_at,
            left_reason=membership.left_reason,
        )


class ClubMemberOut(BaseModel):
    customer_id: int
    joined_at: datetime
    source: str
    reason: str


class ClubMembersOut(BaseModel):
    """The members the club may write to on the channel now; the others counted by reason."""

    club: str
    channel: str
    members: list[ClubMemberOut]
    left_out: dict[str, int]


class ClubSuggestionOut(BaseModel):
    customer_id: int
    purchases: int
    last_purchase_at: datetime


class ClubSuggestionsOut(BaseModel):
    """Customers to invite (never members until they join); the others counted by reason."""

    club: str
    channel: str
    customers: list[ClubSuggestionOut]
    left_out: dict[str, int]


# --- top-customer events ---


def _euros(cents: int) -> Decimal:
    return Decimal(cents).scaleb(-2)


class EventIn(InputModel):
    key: str = Field(min_length=1, max_length=40, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    name: str = Field(min_length=1, max_length=200)
    store: str = Field(min_length=1, max_length=40, description="The outlet's code.")
    starts_at: AwareDatetime
    capacity: int = Field(ge=1, le=1_000_000)
    invite_count: int = Field(ge=1, le=1_000_000, description="How many to invite.")
    purpose: Literal["marketing", "personalised_offers"] = "marketing"
    channel: ContactChannel = ContactChannel.EMAIL


class EventOut(BaseModel):
    key: str
    name: str
    store: str
    starts_at: datetime
    capacity: int
    invite_count: int
    purpose: str
    channel: str
    invited: int
    yes: int
    no: int
    maybe: int
    unanswered: int
    attended: int

    @classmethod
    def of(cls, guest_list: events.GuestList) -> EventOut:
        event = guest_list.event
        return cls(
            key=event.key,
            name=event.name,
            store=guest_list.store,
            starts_at=event.starts_at,
            capacity=event.capacity,
            invite_count=event.invite_count,
            purpose=event.purpose,
            channel=event.channel,
            invited=len(guest_list.guests),
            yes=guest_list.count(Rsvp.YES),
            no=guest_list.count(Rsvp.NO),
            maybe=guest_list.count(Rsvp.MAYBE),
            unanswered=guest_list.count(None),
            attended=guest_list.attended,
        )


class RankedOut(BaseModel):
    rank: int
    customer_id: int
    measure: str
    value: Decimal
    enrolled: bool

    @classmethod
    def of(cls, ranked: events.Ranked) -> RankedOut:
        return cls(
            rank=ranked.rank,
            customer_id=ranked.customer_id,
            measure=ranked.measure.value,
            value=_euros(ranked.value_cents),
            enrolled=ranked.enrolled,
        )


class GuestOut(BaseModel):
    customer_id: int
    rank: int
    measure: str
    value: Decimal
    invited_at: datetime
    rsvp: str | None
    rsvp_at: datetime | None
    attended_at: datetime | None

    @classmethod
    def of(cls, guest: EventGuest) -> GuestOut:
        return cls(
            customer_id=guest.customer_id,
            rank=guest.rank,
            measure=guest.measure,
            value=_euros(guest.value_cents),
            invited_at=guest.invited_at,
            rsvp=guest.rsvp,
            rsvp_at=guest.rsvp_at,
            attended_at=guest.attended_at,
        )


class GuestListOut(BaseModel):
    event: EventOut
    guests: list[GuestOut]


class InvitationsOut(BaseModel):
    """One run of the invitation: the new guests, the earlier ones, and the ranked customers
    passed over by reason."""

    event: str
    invited: list[GuestOut]
    already_invited: int
    left_out: dict[str, int]


class RsvpIn(InputModel):
    answer: Rsvp


class AttendanceOut(BaseModel):
    guest: GuestOut
    recorded: bool
    points: list[dict[str, Any]]


# --- silent programmes, budgets and behaviour ---


def _eur(cents: int) -> Decimal:
    return (Decimal(cents) / 100).quantize(Decimal("0.01"))


def _maybe_euros(cents: int | None) -> Decimal | None:
    return None if cents is None else _eur(cents)


class BehaviourIn(InputModel):
    """A behaviour event of a customer, named by where it comes from so it counts once."""

    customer_id: int = Field(ge=1, le=MAX_ID)
    event: Literal["feedback_given", "referral", "app_installed", "event_attended"]
    source: str = Field(min_length=1, max_length=40)
    external_id: str = Field(min_length=1, max_length=100)
    at: AwareDatetime | None = None


class BehaviourAwardOut(BaseModel):
    """What the event earned in one programme; `visible` is false in a silent programme."""

    programme: str
    kind: str
    points: int
    parts: list[dict[str, Any]]
    notes: list[str]
    visible: bool


class SilentSettingsIn(InputModel):
    """The settings to change; those left out stay as they are."""

    criteria: str | None = Field(default=None, max_length=4000)
    control_percent: int | None = Field(default=None, ge=0, le=90)
    budget_eur: Decimal | None = Field(default=None, ge=0, le=10**11, decimal_places=2)
    point_value_cents: Decimal | None = Field(default=None, ge=0, le=100_000, decimal_places=4)
    target: Literal["control", "baseline"] | None = None
    target_eur: Decimal | None = Field(default=None, ge=0, le=10**11, decimal_places=2)
    period_days: int | None = Field(default=None, ge=1, le=3660)


class SilentSettingsOut(BaseModel):
    programme: str
    criteria: str | None
    control_percent: int
    budget_eur: Decimal | None
    point_value_cents: Decimal
    target: str
    target_eur: Decimal | None
    period_days: int

    @classmethod
    def of(cls, programme: str, settings: SilentSettings) -> SilentSettingsOut:
        return cls(
            programme=programme,
            criteria=settings.criteria,
            control_percent=settings.control_percent,
            budget_eur=_maybe_euros(settings.budget_cents),
            point_value_cents=settings.point_value_cents,
            target=settings.target,
            target_eur=_maybe_euros(settings.target_cents),
            period_days=settings.period_days,
        )


class SelectionOut(BaseModel):
    """One run of the selection: who was enrolled, held out as control, or ended."""

    programme: str
    analysis_as_of: date
    matched: int
    enrolled: list[int]
    held_out: list[int]
    ended: list[int]
    members: int
    control: int


class BenefitIn(InputModel):
    name: str = Field(min_length=1, max_length=200)
    kind: Literal["discount", "relationship", "service"]
    unit_cost_eur: Decimal = Field(ge=0, le=10_000_000, decimal_places=2)


class BenefitOut(BaseModel):
    key: str
    name: str
    kind: str
    unit_cost_eur: Decimal

    @classmethod
    def of(cls, benefit: Benefit) -> BenefitOut:
        return cls(
            key=benefit.key,
            name=benefit.name,
            kind=benefit.kind,
            unit_cost_eur=_eur(benefit.unit_cost_cents),
        )


class GrantIn(InputModel):
    customer_id: int = Field(ge=1, le=MAX_ID)
    benefit: str = Field(min_length=1, max_length=40)
    quantity: int = Field(default=1, ge=1, le=10_000)
    source: str = Field(min_length=1, max_length=40)
    external_id: str = Field(min_length=1, max_length=100)
    note: str | None = Field(default=None, max_length=10_000)


class GrantOut(BaseModel):
    id: int
    programme: str
    customer_id: int
    benefit: str
    quantity: int
    cost_eur: Decimal
    granted_at: datetime
    source: str
    external_id: str
    note: str | None
    staff: str | None


class BudgetOut(BaseModel):
    """Investment so far against the result so far, with the recorded history."""

    programme: str
    at: datetime
    target: str
    members: int
    control: int
    benefits_eur: Decimal
    points: int
    points_eur: Decimal
    investment_eur: Decimal
    budget_eur: Decimal | None
    left_eur: Decimal | None
    target_eur: Decimal | None
    result_eur: Decimal | None
    ratio: Decimal | None
    target_reached: Decimal | None
    note: str
    history: list[dict[str, Any]]

    @classmethod
    def of(cls, report: BudgetReport) -> BudgetOut:
        return cls(
            programme=report.programme,
            at=report.at,
            target=report.target,
            members=report.members,
            control=report.control,
            benefits_eur=_eur(report.benefits_cents),
            points=report.points,
            points_eur=_eur(report.points_cents),
            investment_eur=_eur(report.investment_cents),
            budget_eur=_maybe_euros(report.budget_cents),
            left_eur=_maybe_euros(report.left_cents),
            target_eur=_maybe_euros(report.target_cents),
            result_eur=_maybe_euros(report.result_cents),
            ratio=report.ratio,
            target_reached=report.target_reached,
            note=report.note,
            history=report.history,
        )
