"""loyalty rewards, redemptions and vouchers

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import oppiva.db

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "loyalty_reward",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("programme_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("partner", sa.String(length=200), nullable=True),
        sa.Column("cost_points", sa.Integer(), nullable=False),
        sa.Column("stock", sa.Integer(), nullable=True),
        sa.Column("stock_left", sa.Integer(), nullable=True),
        sa.Column("limit_per_member", sa.Integer(), nullable=True),
        sa.Column("limit_period_days", sa.Integer(), nullable=True),
        sa.Column("tiers", sa.Text(), nullable=True),
        sa.Column("options", sa.Text(), nullable=True),
        sa.Column("available_from", oppiva.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("available_until", oppiva.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("voucher_days", sa.Integer(), nullable=False),
        sa.Column("retired_at", oppiva.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", oppiva.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", oppiva.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["programme_id"],
            ["loyalty_programme.id"],
            name=op.f("fk_loyalty_reward_programme_id_loyalty_programme"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loyalty_reward")),
        sa.UniqueConstraint("programme_id", "key", name=op.f("uq_loyalty_reward_programme_id_key")),
    )
    op.create_table(
        "loyalty_voucher",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("programme_id", sa.Integer(), nullable=False),
        sa.Column("reward_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("option", sa.String(length=40), nullable=True),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("external_id", sa.String(length=100), nullable=False),
        sa.Column("spend_operation_id", BIG_ID, nullable=False),
        sa.Column("issued_at", oppiva.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", oppiva.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("used_at", oppiva.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("used_source", sa.String(length=40), nullable=True),
        sa.Column("used_external_id", sa.String(length=100), nullable=True),
        sa.Column("cancelled_at", oppiva.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("cancel_reason", sa.Text(), nullable=True),
        sa.Column("cancel_operation_id", BIG_ID, nullable=True),
        sa.ForeignKeyConstraint(
            ["cancel_operation_id"],
            ["points_operation.id"],
            name=op.f("fk_loyalty_voucher_cancel_operation_id_points_operation"),
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customer.id"], name=op.f("fk_loyalty_voucher_customer_id_customer")
        ),
        sa.ForeignKeyConstraint(
            ["programme_id"],
            ["loyalty_programme.id"],
            name=op.f("fk_loyalty_voucher_programme_id_loyalty_programme"),
        ),
        sa.ForeignKeyConstraint(
            ["reward_id"],
            ["loyalty_reward.id"],
            name=op.f("fk_loyalty_voucher_reward_id_loyalty_reward"),
        ),
        sa.ForeignKeyConstraint(
            ["spend_operation_id"],
            ["points_operation.id"],
            name=op.f("fk_loyalty_voucher_spend_operation_id_points_operation"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loyalty_voucher")),
        sa.UniqueConstraint("code", name=op.f("uq_loyalty_voucher_code")),
        sa.UniqueConstraint(
            "programme_id",
            "source",
            "external_id",
            name=op.f("uq_loyalty_voucher_programme_id_source_external_id"),
        ),
    )
    with op.batch_alter_table("loyalty_voucher", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_loyalty_voucher_customer_id"), ["customer_id"], unique=False
        )
        batch_op.create_index(
            "ix_loyalty_voucher_reward_id_customer_id", ["reward_id", "customer_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("loyalty_voucher", schema=None) as batch_op:
        batch_op.drop_index("ix_loyalty_voucher_reward_id_customer_id")
        batch_op.drop_index(batch_op.f("ix_loyalty_voucher_customer_id"))

    op.drop_table("loyalty_voucher")
    op.drop_table("loyalty_reward")
