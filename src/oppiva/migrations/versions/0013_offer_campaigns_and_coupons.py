"""offer campaigns, coupons and holdouts

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from oppiva.db import UTCDateTime

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "offer_campaign",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_until", sa.Date(), nullable=False),
        sa.Column("known_per_customer", sa.Integer(), nullable=False),
        sa.Column("new_per_customer", sa.Integer(), nullable=False),
        sa.Column("discount_percent", sa.Integer(), nullable=False),
        sa.Column("expected_redemption", sa.Float(), nullable=False),
        sa.Column("budget_cents", sa.BigInteger(), nullable=True),
        sa.Column("max_per_group", sa.Integer(), nullable=True),
        sa.Column("product_limits", sa.JSON(), nullable=False),
        sa.Column("stock", sa.JSON(), nullable=False),
        sa.Column("supplier_funded", sa.JSON(), nullable=False),
        sa.Column("holdout_share", sa.Float(), nullable=False),
        sa.Column("holdout_seed", sa.Integer(), nullable=False),
        sa.Column("segment_key", sa.String(length=64), nullable=True),
        sa.Column("offers_shown", sa.Integer(), nullable=False),
        sa.Column("picks", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_run_at", UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_offer_campaign")),
        sa.UniqueConstraint("key", name=op.f("uq_offer_campaign_key")),
    )
    op.create_table(
        "offer_campaign_member",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("group", sa.String(length=16), nullable=False),
        sa.Column("assigned_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["offer_campaign.id"],
            name=op.f("fk_offer_campaign_member_campaign_id_offer_campaign"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
            name=op.f("fk_offer_campaign_member_customer_id_customer"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_offer_campaign_member")),
    )
    op.create_index(
        op.f("ix_offer_campaign_member_campaign_id"),
        "offer_campaign_member",
        ["campaign_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_offer_campaign_member_customer_id"),
        "offer_campaign_member",
        ["customer_id"],
        unique=False,
    )
    op.create_table(
        "offer_customer_attribute",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("value", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("set_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
            name=op.f("fk_offer_customer_attribute_customer_id_customer"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_offer_customer_attribute")),
    )
    op.create_index(
        op.f("ix_offer_customer_attribute_customer_id"),
        "offer_customer_attribute",
        ["customer_id"],
        unique=False,
    )
    op.create_table(
        "offer_coupon",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("code", sa.String(length=24), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("discount_percent", sa.Integer(), nullable=False),
        sa.Column("expected_cost_cents", sa.Integer(), nullable=False),
        sa.Column("supplier_funded", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("reason_params", sa.JSON(), nullable=False),
        sa.Column("language", sa.String(length=2), nullable=False),
        sa.Column("explanation", sa.String(length=300), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("valid_until", sa.Date(), nullable=False),
        sa.Column("issued_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("seen_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("redeemed_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "redeemed_receipt_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column("expired_at", UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["offer_campaign.id"],
            name=op.f("fk_offer_coupon_campaign_id_offer_campaign"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
            name=op.f("fk_offer_coupon_customer_id_customer"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["product_id"], ["product.id"], name=op.f("fk_offer_coupon_product_id_product")
        ),
        sa.ForeignKeyConstraint(
            ["redeemed_receipt_id"],
            ["receipt.id"],
            name=op.f("fk_offer_coupon_redeemed_receipt_id_receipt"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_offer_coupon")),
        sa.UniqueConstraint("code", name=op.f("uq_offer_coupon_code")),
    )
    op.create_index(
        op.f("ix_offer_coupon_campaign_id"), "offer_coupon", ["campaign_id"], unique=False
    )
    op.create_index(
        "ix_offer_coupon_customer_id_status",
        "offer_coupon",
        ["customer_id", "status"],
        unique=False,
    )
    op.create_index(
        op.f("ix_offer_coupon_product_id"), "offer_coupon", ["product_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_offer_coupon_product_id"), table_name="offer_coupon")
    op.drop_index("ix_offer_coupon_customer_id_status", table_name="offer_coupon")
    op.drop_index(op.f("ix_offer_coupon_campaign_id"), table_name="offer_coupon")
    op.drop_table("offer_coupon")
    op.drop_index(
        op.f("ix_offer_customer_attribute_customer_id"), table_name="offer_customer_attribute"
    )
    op.drop_table("offer_customer_attribute")
    op.drop_index(op.f("ix_offer_campaign_member_customer_id"), table_name="offer_campaign_member")
    op.drop_index(op.f("ix_offer_campaign_member_campaign_id"), table_name="offer_campaign_member")
    op.drop_table("offer_campaign_member")
    op.drop_table("offer_campaign")
