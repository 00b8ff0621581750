"""Vouchers at the till and in the member's hands: check, use once, cancel; the member's
vouchers, statement and export (see `oppiva.loyalty.rewards` for the catalogue and
redemption, and for the locking these share).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from oppiva.customers.models import Customer
from oppiva.errors import Conflict, InvalidInput, NotFound
from oppiva.loyalty import ledger, tiers
from oppiva.loyalty.ledger import _moment, _request, _text
from oppiva.loyalty.models import Programme, Reward, Voucher, VoucherStatus
from oppiva.loyalty.rewards import _lock_reward, _member, options_of
from oppiva.loyalty.voucher_codes import format_code, normalise_code

CANCEL_SOURCE = "voucher"
"""The source of the adjustments that give a cancelled voucher's points back (external id:
`cancel:<code>`)."""


Verdict = Literal["valid", "unknown", "mistyped", "used", "expired", "cancelled"]


@dataclass(frozen=True)
class VoucherView:
    """A voucher as the till, the member and the statement see it."""

    code: str
    """Formatted, `XXXX-XXXX-XXXX-XXXX`."""
    status: str
    """issued, used, cancelled, or expired (issued and past its expiry)."""
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
    """The receipt that used it, as source/external id."""
    cancelled_at: datetime | None
    cancel_reason: str | None


def view(session: Session, voucher: Voucher, at: datetime | None = None) -> VoucherView:
    at = _moment(at)
    reward = session.get_one(Reward, voucher.reward_id)
    programme = session.get_one(Programme, voucher.programme_id)
    status = voucher.status
    if status == VoucherStatus.ISSUED and voucher.expires_at <= at:
        status = "expired"
    names = {choice.key: choice.name for choice in options_of(reward)}
    return VoucherView(
        code=format_code(voucher.code),
        status=status,
        programme=programme.key,
        customer_id=voucher.customer_id,
        reward=reward.key,
        reward_name=reward.name,
        option=voucher.option,
        option_name=names.get(voucher.option) if voucher.option else None,
        points=voucher.points,
        issued_at=voucher.issued_at,
        expires_at=voucher.expires_at,
        used_at=voucher.used_at,
        used_on=(
            f"{voucher.used_source}/{voucher.used_external_id}" if voucher.used_source else None
        ),
        cancelled_at=voucher.cancelled_at,
        cancel_reason=voucher.cancel_reason,
    )


@dataclass(frozen=True)
class Check:
    """The till's question answered: `verdict` with a sentence, and the voucher when known."""

    verdict: Verdict
    message: str
    voucher: VoucherView | None = None


def check(session: Session, code: str, at: datetime | None = None) -> Check:
    """Whether `code` can be used now: valid, or unknown, mistyped, used, expired or cancelled."""
    at = _moment(at)
    try:
        stored = normalise_code(code)
    except InvalidInput as exc:
        return Check("mistyped", exc.reason)
    voucher = session.scalar(select(Voucher).where(Voucher.code == stored))
    if voucher is None:
        return Check("unknown", f"no voucher {format_code(stored)}")
    seen = view(session, voucher, at)
    what = seen.reward_name + (f" ({seen.option_name})" if seen.option_name else "")
    messages: dict[str, tuple[Verdict, str]] = {
        VoucherStatus.ISSUED: ("valid", f"{what}, valid until {seen.expires_at.isoformat()}"),
        "expired": ("expired", f"{what}: expired {seen.expires_at.isoformat()}"),
        VoucherStatus.USED: (
            "used",
            f"{what}: used {seen.used_at.isoformat() if seen.used_at else ''} on {seen.used_on}",
        ),
        VoucherStatus.CANCELLED: (
            "cancelled",
            f"{what}: cancelled {seen.cancelled_at.isoformat() if seen.cancelled_at else ''}",
        ),
    }
    verdict, message = messages[seen.status]
    return Check(verdict, message, seen)


def _voucher(session: Session, code: str) -> Voucher:
    voucher = session.scalar(
        select(Voucher).where(Voucher.code == code).execution_options(populate_existing=True)
    )
    if voucher is None:
        raise NotFound(f"no voucher {format_code(code)}")
    return voucher


def use(
    session: Session,
    code: str,
    *,
    source: str,
    external_id: str,
    at: datetime | None = None,
) -> Voucher:
    """Use the voucher on the receipt (source, external id), once: the same receipt again gets
    the same answer; another receipt, or a used, cancelled or expired voucher, is a Conflict."""
    stored = normalise_code(code)
    source, external_id = _request(source, external_id)
    at = _moment(at)
    taken = cast(
        "CursorResult[Any]",
        session.execute(
            update(Voucher)
            .where(
                Voucher.code == stored,
                Voucher.status == VoucherStatus.ISSUED,
                Voucher.expires_at > at,
            )
            .values(
                status=VoucherStatus.USED,
                used_at=at,
                used_source=source,
                used_external_id=external_id,
            )
            .execution_options(synchronize_session=False)
        ),
    )
    voucher = _voucher(session, stored)
    shown = format_code(stored)
    if taken.rowcount == 1:
        return voucher
    if voucher.status == VoucherStatus.USED:
        if (voucher.used_source, voucher.used_external_id) == (source, external_id):
            return voucher
        raise Conflict(
            f"voucher {shown} was already used {voucher.used_at.isoformat() if voucher.used_at else ''}"
            f" on {voucher.used_source}/{voucher.used_external_id}"
        )
    if voucher.status == VoucherStatus.CANCELLED:
        raise Conflict(f"voucher {shown} was cancelled")
    raise Conflict(f"voucher {shown} expired {voucher.expires_at.isoformat()}")


def cancel(
    session: Session,
    code: str,
    *,
    reason: str,
    staff: str,
    at: datetime | None = None,
) -> Voucher:
    """Cancel an unused voucher (expired or not): its points come back to the member as an
    adjustment, spendable at once, and its unit back to the stock. Repeated, it returns the
    cancelled voucher; a used voucher is a Conflict."""
    stored = normalise_code(code)
    reason = _text(reason, "reason", 10_000)
    staff = _text(staff, "staff", 100)
    at = _moment(at)
    owner = select(Voucher.reward_id).where(Voucher.code == stored).scalar_subquery()
    if not _lock_reward(session, Reward.id == owner):
        raise NotFound(f"no voucher {format_code(stored)}")
    voucher = _voucher(session, stored)
    shown = format_code(stored)
    if voucher.status == VoucherStatus.CANCELLED:
        return voucher
    taken = cast(
        "CursorResult[Any]",
        session.execute(
            update(Voucher)
            .where(Voucher.id == voucher.id, Voucher.status == VoucherStatus.ISSUED)
            .values(status=VoucherStatus.CANCELLED, cancelled_at=at, cancel_reason=reason)
            .execution_options(synchronize_session=False)
        ),
    )
    if taken.rowcount != 1:
        voucher = _voucher(session, stored)
        raise Conflict(
            f"voucher {shown} was used on {voucher.used_source}/{voucher.used_external_id}: "
            "it cannot be cancelled"
        )
    reward = session.get_one(Reward, voucher.reward_id)
    programme = session.get_one(Programme, voucher.programme_id)
    operation = ledger.adjust(
        session,
        programme.key,
        voucher.customer_id,
        voucher.points,
        reason=f"voucher {shown} cancelled ({reward.name}): {reason}",
        staff=staff,
        source=CANCEL_SOURCE,
        external_id=f"cancel:{stored}",
        at=at,
    )
    session.execute(
        update(Reward)
        .where(Reward.id == reward.id, Reward.stock_left.is_not(None))
        .values(stock_left=Reward.stock_left + 1)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(Voucher)
        .where(Voucher.id == voucher.id)
        .values(cancel_operation_id=operation.id)
        .execution_options(synchronize_session=False)
    )
    return _voucher(session, stored)


# --- the member's vouchers and statement ------------------------------------------------


def vouchers(
    session: Session, programme_key: str, customer_id: int, at: datetime | None = None
) -> list[VoucherView]:
    """The member's vouchers in the programme, the newest first."""
    at = _moment(at)
    programme = ledger.get_programme(session, programme_key)
    _member(session, programme, customer_id)
    rows = session.scalars(
        select(Voucher)
        .where(Voucher.programme_id == programme.id, Voucher.customer_id == customer_id)
        .order_by(Voucher.issued_at.desc(), Voucher.id.desc())
    )
    return [view(session, voucher, at) for voucher in rows]


@dataclass(frozen=True)
class MemberStatement:
    """Everything the member's printable statement shows, as of `at`."""

    at: datetime
    programme_key: str
    programme_name: str
    points_name: str
    customer_id: int
    member_name: str
    member_number: int
    joined_at: datetime
    tier: str | None
    balance: ledger.Balance
    entries: list[dict[str, Any]]
    vouchers: list[VoucherView]


def member_statement(
    session: Session, programme_key: str, customer_id: int, at: datetime | None = None
) -> MemberStatement:
    """The member, their balance, every ledger entry with its rule and their vouchers."""
    at = _moment(at)
    programme = ledger.get_programme(session, programme_key)
    membership = _member(session, programme, customer_id)
    customer = session.get_one(Customer, customer_id)
    name = customer.name or " ".join(
        part for part in (customer.given_name, customer.family_name) if part
    )
    tier_names = {tier.key: tier.name for tier in tiers.get_tiers(session, programme_key)}
    return MemberStatement(
        at=at,
        programme_key=programme.key,
        programme_name=programme.name,
        points_name=programme.points_name,
        customer_id=customer_id,
        member_name=name or f"Customer {customer_id}",
        member_number=membership.member_number,
        joined_at=membership.joined_at,
        tier=tier_names.get(membership.tier, membership.tier) if membership.tier else None,
        balance=ledger.balance(session, programme_key, customer_id, at),
        entries=ledger.statement(session, programme_key, customer_id),
        vouchers=vouchers(session, programme_key, customer_id, at),
    )


def exported(session: Session, programme_key: str, customer_id: int) -> list[dict[str, Any]]:
    """The member's redemptions and vouchers, JSON-ready, for a subject-access export."""
    return [
        {
            name: value.isoformat() if isinstance(value, datetime) else value
            for name, value in vars(voucher).items()
        }
        for voucher in vouchers(session, programme_key, customer_id)
    ]
