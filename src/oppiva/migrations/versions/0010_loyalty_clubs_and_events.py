"""loyalty clubs and top-customer events

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import oppiva.db

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _customer_and(table: str, parent: str, column: str) -> list[sa.ForeignKeyConstraint]:
    return [
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customer.id"], name=op.f(f"fk_{table}_customer_id_customer")
        ),
        sa.ForeignKeyConstraint(
            [column], [f"{parent}.id"], name=op.f(f"fk_{table}_{column}_{parent}")
        ),
    ]


def upgrade() -> None:
    op.create_table(
        "loyalty_club",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("suggestion", sa.Text(), nullable=True),
        sa.Column("created_at", oppiva.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", oppiva.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loyalty_club")),
        sa.UniqueConstraint("key", name=op.f("uq_loyalty_club_key")),
    )
    op.create_table(
        "loyalty_club_membership",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("club_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("channels", sa.String(length=100), nullable=False),
        sa.Column("joined_at", oppiva.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("left_at", oppiva.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("left_reason", sa.Text(), nullable=True),
        *_customer_and("loyalty_club_membership", "loyalty_club", "club_id"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loyalty_club_membership")),
    )
    op.create_table(
        "loyalty_club_decline",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("club_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("declined_at", oppiva.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=False),
        *_customer_and("loyalty_club_decline", "loyalty_club", "club_id"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loyalty_club_decline")),
    )
    op.create_table(
        "loyalty_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("outlet_id", sa.Integer(), nullable=False),
        sa.Column("starts_at", oppiva.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("invite_count", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("created_at", oppiva.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["outlet_id"], ["outlet.id"], name=op.f("fk_loyalty_event_outlet_id_outlet")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loyalty_event")),
        sa.UniqueConstraint("key", name=op.f("uq_loyalty_event_key")),
    )
    op.create_table(
        "loyalty_event_guest",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("measure", sa.String(length=16), nullable=False),
        sa.Column("value_cents", sa.BigInteger(), nullable=False),
        sa.Column("invited_at", oppiva.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("rsvp", sa.String(length=8), nullable=True),
        sa.Column("rsvp_at", oppiva.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("attended_at", oppiva.db.UTCDateTime(timezone=True), nullable=True),
        *_customer_and("loyalty_event_guest", "loyalty_event", "event_id"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loyalty_event_guest")),
    )
    for table, parent in [
        ("loyalty_club_membership", "club_id"),
        ("loyalty_club_decline", "club_id"),
        ("loyalty_event_guest", "event_id"),
    ]:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(f"ix_{table}_{parent}_customer_id", [parent, "customer_id"])
            batch_op.create_index(op.f(f"ix_{table}_customer_id"), ["customer_id"])
    with op.batch_alter_table("loyalty_event", schema=None) as batch_op:
        batch_op.create_index(op.f("ix_loyalty_event_outlet_id"), ["outlet_id"])


def downgrade() -> None:
    with op.batch_alter_table("loyalty_event", schema=None) as batch_op:
        batch_op.drop_index(op.f("ix_loyalty_event_outlet_id"))
    for table, parent in [
        ("loyalty_event_guest", "event_id"),
        ("loyalty_club_decline", "club_id"),
        ("loyalty_club_membership", "club_id"),
    ]:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(op.f(f"ix_{table}_customer_id"))
            batch_op.drop_index(f"ix_{table}_{parent}_customer_id")
    for table in (
        "loyalty_event_guest",
        "loyalty_event",
        "loyalty_club_decline",
        "loyalty_club_membership",
        "loyalty_club",
    ):
        op.drop_table(table)
