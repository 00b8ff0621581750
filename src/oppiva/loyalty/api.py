"""HTTP routes of loyalty: programmes, joining, a member's balance and statement."""

from __future__ import annotations

from dataclasses import asdict
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, status
from fastapi.responses import HTMLResponse, PlainTextResponse
from pydantic import ValidationError

from oppiva.access.permissions import P
from oppiva.api.deps import DbSession
from oppiva.api.security import Access, require
from oppiva.db import MAX_ID, utcnow
from oppiva.errors import InvalidInput
from oppiva.loyalty import (
    behaviour,
    clubs,
    events,
    ledger,
    rewards,
    service,
    silent,
    statement_formats,
    tiers,
    vouchers,
)
from oppiva.loyalty.clubs import ClubDefinition
from oppiva.loyalty.rewards import RewardDefinition
from oppiva.loyalty.rules import _place_and_reason
from oppiva.loyalty.schemas import (
    AttendanceOut,
    BalanceOut,
    BehaviourAwardOut,
    BehaviourIn,
    BenefitIn,
    BenefitOut,
    BudgetOut,
    ClubDeclineIn,
    ClubIn,
    ClubJoinIn,
    ClubMembershipOut,
    ClubMembersOut,
    ClubOut,
    ClubSuggestionsOut,
    EventIn,
    EventOut,
    GrantIn,
    GrantOut,
    GuestListOut,
    GuestOut,
    InvitationsOut,
    JoinIn,
    MembershipOut,
    OfferOut,
    ProgrammeOut,
    RankedOut,
    RedemptionIn,
    RewardIn,
    RewardOut,
    RsvpIn,
    SelectionOut,
    SilentSettingsIn,
    SilentSettingsOut,
    StatementEntryOut,
    VoucherCancelIn,
    VoucherCheckOut,
    VoucherOut,
    VoucherUseIn,
    tier_fields,
)
from oppiva.privacy.models import ContactChannel

router = APIRouter(prefix="/loyalty", tags=["loyalty"])
Reader = Annotated[Access, Depends(require(P.LOYALTY_READ))]
Writer = Annotated[Access, Depends(require(P.LOYALTY_WRITE))]
Key = Annotated[str, Path(min_length=1, max_length=40)]
CustomerId = Annotated[int, Path(ge=1, le=MAX_ID)]


@router.get("/programmes", response_model=list[ProgrammeOut])
def list_programmes(session: DbSession, access: Reader) -> list[ProgrammeOut]:
    return [ProgrammeOut.of(p, members) for p, members in service.programmes(session)]


@router.post(
    "/programmes/{key}/members",
    response_model=MembershipOut,
    status_code=status.HTTP_201_CREATED,
)
def join(key: Key, body: JoinIn, session: DbSession, access: Writer) -> MembershipOut:
    """Make the customer a member (an existing membership is returned as it is)."""
    membership = ledger.join(session, key, body.customer_id, body.source)
    access.audit(session, "loyalty.join", [body.customer_id], programme=key)
    return MembershipOut(
        programme=key,
        customer_id=membership.customer_id,
        member_number=membership.member_number,
        joined_at=membership.joined_at,
        status=membership.status,
        source=membership.source,
    )


@router.get("/programmes/{key}/members/{customer_id}/balance", response_model=BalanceOut)
def balance(key: Key, customer_id: CustomerId, session: DbSession, access: Reader) -> BalanceOut:
    """The member's points and tier status (as of now; reading writes no tier change)."""
    points = ledger.balance(session, key, customer_id)
    tier = tier_fields(tiers.status(session, key, customer_id, utcnow()))
    access.audit(session, "loyalty.balance.read", [customer_id], programme=key)
    return BalanceOut(programme=key, customer_id=customer_id, **vars(points), **tier)


@router.get(
    "/programmes/{key}/members/{customer_id}/statement", response_model=list[StatementEntryOut]
)
def statement(
    key: Key, customer_id: CustomerId, session: DbSession, access: Reader
) -> list[StatementEntryOut]:
    entries = ledger.statement(session, key, customer_id)
    access.audit(session, "loyalty.statement.read", [customer_id], programme=key)
    return [StatementEntryOut.model_validate(entry) for entry in entries]


# --- rewards, redemptions and vouchers ---

RewardKey = Annotated[str, Path(min_length=1, max_length=40)]
Code = Annotated[str, Path(min_length=1, max_length=40)]


@router.get("/programmes/{key}/rewards", response_model=list[RewardOut])
def list_rewards(
    key: Key,
    session: DbSession,
    access: Reader,
    include_retired: Annotated[bool, Query(description="Also the retired rewards.")] = False,
) -> list[RewardOut]:
    """The programme's reward catalogue, by key."""
    found = rewards.catalogue(session, key, include_retired=include_retired)
    return [RewardOut.of(reward) for reward in found]


@router.put("/programmes/{key}/rewards/{reward}", response_model=RewardOut)
def put_reward(
    key: Key, reward: RewardKey, body: RewardIn, session: DbSession, access: Writer
) -> RewardOut:
    """Create or update the reward under its key (a retired one comes back)."""
    if body.key not in ("", reward):
        raise InvalidInput("key", f"the body names {body.key!r}, the path {reward!r}")
    try:
        definition = RewardDefinition.model_validate({**body.model_dump(), "key": reward})
    except ValidationError as exc:
        place, reason = _place_and_reason(exc.errors()[0])
        raise InvalidInput(place, reason) from None
    kept = rewards.set_reward(session, key, definition)
    access.audit(session, "loyalty.reward.set", programme=key, reward=reward)
    return RewardOut.of(kept)


@router.delete("/programmes/{key}/rewards/{reward}", response_model=RewardOut)
def retire_reward(key: Key, reward: RewardKey, session: DbSession, access: Writer) -> RewardOut:
    """Retire the reward: no more redemptions; the vouchers issued stay valid."""
    retired = rewards.retire(session, key, reward)
    access.audit(session, "loyalty.reward.retire", programme=key, reward=reward)
    return RewardOut.of(retired)


@router.get("/programmes/{key}/members/{customer_id}/rewards", response_model=list[OfferOut])
def member_rewards(
    key: Key,
    customer_id: CustomerId,
    session: DbSession,
    access: Reader,
    redeemable: Annotated[bool, Query(description="Only what the member may redeem now.")] = False,
) -> list[OfferOut]:
    """The catalogue as the member sees it: what they may redeem, and why not otherwise."""
    found = rewards.offers(session, key, customer_id, redeemable_only=redeemable)
    access.audit(session, "loyalty.rewards.read", [customer_id], programme=key)
    return [OfferOut.of(offer) for offer in found]


@router.post(
    "/programmes/{key}/members/{customer_id}/redemptions",
    response_model=VoucherOut,
    status_code=status.HTTP_201_CREATED,
)
def redeem(
    key: Key, customer_id: CustomerId, body: RedemptionIn, session: DbSession, access: Writer
) -> VoucherOut:
    """Spend the reward's points and issue its voucher; the same (source, external id) again
    answers the same voucher."""
    voucher = rewards.redeem(
        session,
        key,
        customer_id,
        body.reward,
        option=body.option,
        source=body.source,
        external_id=body.external_id,
    )
    access.audit(session, "loyalty.redeem", [customer_id], programme=key, reward=body.reward)
    return VoucherOut.of(vouchers.view(session, voucher))


@router.get("/programmes/{key}/members/{customer_id}/vouchers", response_model=list[VoucherOut])
def member_vouchers(
    key: Key, customer_id: CustomerId, session: DbSession, access: Reader
) -> list[VoucherOut]:
    """The member's vouchers, the newest first."""
    found = vouchers.vouchers(session, key, customer_id)
    access.audit(session, "loyalty.vouchers.read", [customer_id], programme=key)
    return [VoucherOut.of(voucher) for voucher in found]


@router.get("/vouchers/{code}", response_model=VoucherCheckOut)
def check_voucher(code: Code, session: DbSession, access: Reader) -> VoucherCheckOut:
    """Whether the code can be used now: valid, unknown, mistyped, used, expired or cancelled
    (always 200: the verdict is the answer)."""
    result = vouchers.check(session, code)
    shown = VoucherOut.of(result.voucher) if result.voucher is not None else None
    if shown is not None:
        access.audit(session, "loyalty.voucher.read", [shown.customer_id], voucher=shown.code)
    return VoucherCheckOut(verdict=result.verdict, message=result.message, voucher=shown)


@router.post("/vouchers/{code}/use", response_model=VoucherOut)
def use_voucher(code: Code, body: VoucherUseIn, session: DbSession, access: Writer) -> VoucherOut:
    """Use the voucher on the receipt, once: the same receipt again answers the same; another
    receipt, or a used, cancelled or expired voucher, is 409."""
    voucher = vouchers.use(session, code, source=body.source, external_id=body.external_id)
    shown = VoucherOut.of(vouchers.view(session, voucher))
    access.audit(session, "loyalty.voucher.use", [shown.customer_id], voucher=shown.code)
    return shown


@router.post("/vouchers/{code}/cancel", response_model=VoucherOut)
def cancel_voucher(
    code: Code, body: VoucherCancelIn, session: DbSession, access: Writer
) -> VoucherOut:
    """Cancel an unused voucher: its points come back to the member, its unit to the stock."""
    voucher = vouchers.cancel(session, code, reason=body.reason, staff=access.principal.actor)
    shown = VoucherOut.of(vouchers.view(session, voucher))
    access.audit(session, "loyalty.voucher.cancel", [shown.customer_id], voucher=shown.code)
    return shown


@router.get(
    "/programmes/{key}/members/{customer_id}/statement.csv",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/csv": {}}}},
)
def statement_csv(
    key: Key, customer_id: CustomerId, session: DbSession, access: Reader
) -> PlainTextResponse:
    """The member's statement as CSV (formula-like cells made inert)."""
    entries = ledger.statement(session, key, customer_id)
    access.audit(session, "loyalty.statement.read", [customer_id], programme=key, format="csv")
    return PlainTextResponse(
        statement_formats.to_csv(entries),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="statement-{key}-{customer_id}.csv"'
        },
    )


@router.get("/programmes/{key}/members/{customer_id}/statement.html", response_class=HTMLResponse)
def statement_html(
    key: Key, customer_id: CustomerId, session: DbSession, access: Reader
) -> HTMLResponse:
    """The member's statement as a printable page."""
    document = vouchers.member_statement(session, key, customer_id)
    access.audit(session, "loyalty.statement.read", [customer_id], programme=key, format="html")
    return HTMLResponse(statement_formats.to_html(document))


# --- clubs ---

ChannelQuery = Annotated[
    ContactChannel, Query(description="The channel the communications go out on.")
]
ListLimit = Annotated[int | None, Query(ge=1, le=100_000)]


@router.get("/clubs", response_model=list[ClubOut])
def list_clubs(session: DbSession, access: Reader) -> list[ClubOut]:
    """Every club with its number of members."""
    return [ClubOut.of(club, members) for club, members in clubs.clubs(session)]


@router.put("/clubs/{key}", response_model=ClubOut)
def set_club(key: Key, body: ClubIn, session: DbSession, access: Writer) -> ClubOut:
    """Create the club or replace its definition; its members stay."""
    try:
        definition = ClubDefinition(key=key, **body.model_dump())
    except ValidationError as exc:
        raise InvalidInput("key", exc.errors()[0]["msg"]) from None
    (club,) = clubs.set_clubs(session, [definition])
    access.audit(session, "loyalty.club.set", club=key)
    members = dict((c.key, n) for c, n in clubs.clubs(session))
    return ClubOut.of(club, members.get(key, 0))


@router.post(
    "/clubs/{key}/members", response_model=ClubMembershipOut, status_code=status.HTTP_201_CREATED
)
def join_club(key: Key, body: ClubJoinIn, session: DbSession, access: Writer) -> ClubMembershipOut:
    """The customer joins on interest and consents to the club's communications on the
    channels given (an existing membership is returned, the consent recorded again)."""
    membership = clubs.join(
        session,
        key,
        body.customer_id,
        [c.value for c in body.channels],
        source=body.source,
        how=body.how,
    )
    access.audit(session, "loyalty.club.join", [body.customer_id], club=key)
    return ClubMembershipOut.of(key, membership)


@router.delete("/clubs/{key}/members/{customer_id}", response_model=ClubMembershipOut)
def leave_club(
    key: Key,
    customer_id: CustomerId,
    session: DbSession,
    access: Writer,
    reason: Annotated[str | None, Query(max_length=500)] = None,
) -> ClubMembershipOut:
    """End the membership (kept as history); no consent changes."""
    membership = clubs.leave(session, key, customer_id, reason=reason)
    access.audit(session, "loyalty.club.leave", [customer_id], club=key)
    return ClubMembershipOut.of(key, membership)


@router.post("/clubs/{key}/declines", status_code=status.HTTP_204_NO_CONTENT)
def decline_club(key: Key, body: ClubDeclineIn, session: DbSession, access: Writer) -> None:
    """The customer said no: the club never suggests them again."""
    clubs.decline(session, key, body.customer_id, source=body.source)
    access.audit(session, "loyalty.club.decline", [body.customer_id], club=key)


@router.get("/clubs/{key}/members", response_model=ClubMembersOut)
def club_members(
    key: Key, channel: ChannelQuery, session: DbSession, access: Reader
) -> ClubMembersOut:
    """The members the club may write to on the channel now, and the others by reason."""
    found = clubs.members(session, key, channel.value)
    access.audit(
        session,
        "loyalty.club.members.read",
        [m.customer_id for m in found.members] or [None],
        club=key,
    )
    return ClubMembersOut.model_validate(asdict(found))


@router.get("/clubs/{key}/suggestions", response_model=ClubSuggestionsOut)
def club_suggestions(
    key: Key,
    channel: ChannelQuery,
    session: DbSession,
    access: Reader,
    limit: ListLimit = None,
) -> ClubSuggestionsOut:
    """Customers to invite to the club from their purchases; none of them is a member."""
    found = clubs.suggest(session, key, channel.value, limit=limit)
    access.audit(
        session,
        "loyalty.club.suggestions.read",
        [s.customer_id for s in found.customers] or [None],
        club=key,
    )
    return ClubSuggestionsOut.model_validate(asdict(found))


# --- top-customer events ---


@router.post("/events", response_model=EventOut, status_code=status.HTTP_201_CREATED)
def create_event(body: EventIn, session: DbSession, access: Writer) -> EventOut:
    """A new event for a store's best customers."""
    event = events.create_event(
        session,
        body.key,
        body.name,
        store=body.store,
        starts_at=body.starts_at,
        capacity=body.capacity,
        invite_count=body.invite_count,
        purpose=body.purpose,
        channel=body.channel.value,
    )
    access.audit(session, "loyalty.event.create", event=event.key)
    return EventOut.of(events.guests(session, event.key))


@router.get("/events", response_model=list[EventOut])
def list_events(session: DbSession, access: Reader) -> list[EventOut]:
    """Every event, soonest first, with its guests counted by answer."""
    return [EventOut.of(events.guests(session, e.key)) for e, _ in events.events(session)]


@router.get("/events/{key}/ranking", response_model=list[RankedOut])
def event_ranking(
    key: Key,
    session: DbSession,
    access: Reader,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 100,
) -> list[RankedOut]:
    """The store's customers by value, best first, each with the measure used."""
    ranked = events.rank(session, key, limit=limit)
    access.audit(
        session, "loyalty.event.ranking.read", [r.customer_id for r in ranked] or [None], event=key
    )
    return [RankedOut.of(r) for r in ranked]


@router.post("/events/{key}/invitations", response_model=InvitationsOut)
def invite_guests(key: Key, session: DbSession, access: Writer) -> InvitationsOut:
    """Invite the best customers who may be contacted, up to the event's invite count."""
    done = events.invite(session, key)
    access.audit(
        session,
        "loyalty.event.invite",
        [g.customer_id for g in done.invited] or [None],
        event=key,
    )
    return InvitationsOut(
        event=done.event,
        invited=[GuestOut.of(g) for g in done.invited],
        already_invited=done.already_invited,
        left_out=done.left_out,
    )


@router.get("/events/{key}/guests", response_model=GuestListOut)
def event_guests(key: Key, session: DbSession, access: Reader) -> GuestListOut:
    """The event with its guests by rank, their answers and visits."""
    found = events.guests(session, key)
    access.audit(
        session,
        "loyalty.event.guests.read",
        [g.customer_id for g in found.guests] or [None],
        event=key,
    )
    return GuestListOut(event=EventOut.of(found), guests=[GuestOut.of(g) for g in found.guests])


@router.put("/events/{key}/guests/{customer_id}/rsvp", response_model=GuestOut)
def answer_invitation(
    key: Key, customer_id: CustomerId, body: RsvpIn, session: DbSession, access: Writer
) -> GuestOut:
    """The guest's answer (yes, no, maybe); a yes beyond the capacity is 409."""
    guest = events.rsvp(session, key, customer_id, body.answer.value)
    access.audit(session, "loyalty.event.rsvp", [customer_id], event=key, answer=guest.rsvp)
    return GuestOut.of(guest)


@router.post("/events/{key}/guests/{customer_id}/attendance", response_model=AttendanceOut)
def record_attendance(
    key: Key, customer_id: CustomerId, session: DbSession, access: Writer
) -> AttendanceOut:
    """The guest came: on the timeline, with the behaviour points it earns (once)."""
    done = events.attend(session, key, customer_id)
    access.audit(session, "loyalty.event.attend", [customer_id], event=key)
    return AttendanceOut(
        guest=GuestOut.of(done.guest),
        recorded=done.recorded,
        points=[asdict(award) for award in done.awards],
    )


# --- silent programmes, budgets and behaviour ---

BenefitKey = Annotated[str, Path(min_length=1, max_length=40)]


@router.post("/behaviour", response_model=list[BehaviourAwardOut])
def record_behaviour(
    body: BehaviourIn, session: DbSession, access: Writer
) -> list[BehaviourAwardOut]:
    """A behaviour event (feedback given, referral, app installed, event attended): the points
    each of the customer's programmes gives for it, once per (source, external id)."""
    awards = behaviour.award(
        session,
        body.customer_id,
        body.event,
        source=body.source,
        external_id=body.external_id,
        at=body.at,
    )
    access.audit(session, "loyalty.behaviour", [body.customer_id], event=body.event)
    return [BehaviourAwardOut.model_validate(asdict(award)) for award in awards]


@router.get("/programmes/{key}/silent", response_model=SilentSettingsOut)
def get_silent(key: Key, session: DbSession, access: Reader) -> SilentSettingsOut:
    """A silent programme's selection criteria, control share, budget and target."""
    return SilentSettingsOut.of(key, silent.get_settings(session, key))


@router.patch("/programmes/{key}/silent", response_model=SilentSettingsOut)
def set_silent(
    key: Key, body: SilentSettingsIn, session: DbSession, access: Writer
) -> SilentSettingsOut:
    """Change the settings given (criteria checked, errors with line and column)."""
    settings = silent.configure(session, key, **body.model_dump(exclude_unset=True))
    access.audit(session, "loyalty.silent.set", programme=key)
    return SilentSettingsOut.of(key, settings)


@router.post("/programmes/{key}/selection", response_model=SelectionOut)
def run_selection(key: Key, session: DbSession, access: Writer) -> SelectionOut:
    """Enrol who matches the criteria in the latest analysis, hold out the control share,
    end the stints of who no longer matches."""
    result = silent.select_members(session, key)
    touched = result.enrolled + result.held_out + result.ended
    access.audit(session, "loyalty.silent.select", touched or [None], programme=key)
    return SelectionOut.model_validate(asdict(result))


@router.get("/programmes/{key}/benefits", response_model=list[BenefitOut])
def list_benefits(key: Key, session: DbSession, access: Reader) -> list[BenefitOut]:
    """The silent programme's benefits catalogue, by key."""
    return [BenefitOut.of(b) for b in silent.benefits(session, key)]


@router.put("/programmes/{key}/benefits/{benefit}", response_model=BenefitOut)
def put_benefit(
    key: Key, benefit: BenefitKey, body: BenefitIn, session: DbSession, access: Writer
) -> BenefitOut:
    """Create or change the benefit under its key; grants made keep their cost."""
    kept = silent.set_benefit(
        session, key, benefit, name=body.name, kind=body.kind, unit_cost_eur=body.unit_cost_eur
    )
    access.audit(session, "loyalty.benefit.set", programme=key, benefit=benefit)
    return BenefitOut.of(kept)


@router.post(
    "/programmes/{key}/grants", response_model=GrantOut, status_code=status.HTTP_201_CREATED
)
def grant_benefit(key: Key, body: GrantIn, session: DbSession, access: Writer) -> GrantOut:
    """Give a member a benefit, its cost recorded; beyond the budget it is 409."""
    granted = silent.grant(
        session,
        key,
        body.customer_id,
        body.benefit,
        quantity=body.quantity,
        source=body.source,
        external_id=body.external_id,
        note=body.note,
        staff=access.principal.actor,
    )
    access.audit(session, "loyalty.benefit.grant", [body.customer_id], programme=key)
    return GrantOut(
        id=granted.id,
        programme=key,
        customer_id=granted.customer_id,
        benefit=body.benefit,
        quantity=granted.quantity,
        cost_eur=(Decimal(granted.cost_cents) / 100).quantize(Decimal("0.01")),
        granted_at=granted.granted_at,
        source=granted.source,
        external_id=granted.external_id,
        note=granted.note,
        staff=granted.staff,
    )


@router.get("/programmes/{key}/budget", response_model=BudgetOut)
def get_budget(key: Key, session: DbSession, access: Reader) -> BudgetOut:
    """Investment so far against the result so far, their ratio, and the recorded history."""
    return BudgetOut.of(silent.budget(session, key))


@router.post("/programmes/{key}/budget/snapshots", response_model=BudgetOut)
def record_budget(key: Key, session: DbSession, access: Writer) -> BudgetOut:
    """Measure the budget now and keep the measure in its history."""
    report = silent.budget(session, key, record=True)
    access.audit(session, "loyalty.budget.record", programme=key)
    return BudgetOut.of(report)
