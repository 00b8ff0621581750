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
from enum import StrEnum

from sqlalchemy import BigInteger, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
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


class MembershipStatus(StrEnum):
    ACTIVE = "active"


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


# --- clubs ---


# --- top-customer events ---


# --- silent programmes, budgets and behaviour ---
