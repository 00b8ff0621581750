"""offers chosen by the customer

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from oppiva.db import UTCDateTime

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "offer_choice",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("coupon_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("chosen_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["offer_campaign.id"],
            name=op.f("fk_offer_choice_campaign_id_offer_campaign"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["coupon_id"],
            ["offer_coupon.id"],
            name=op.f("fk_offer_choice_coupon_id_offer_coupon"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
            name=op.f("fk_offer_choice_customer_id_customer"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["product_id"], ["product.id"], name=op.f("fk_offer_choice_product_id_product")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_offer_choice")),
    )
    op.create_index(
        op.f("ix_offer_choice_campaign_id"), "offer_choice", ["campaign_id"], unique=False
    )
    op.create_index(
        op.f("ix_offer_choice_customer_id"), "offer_choice", ["customer_id"], unique=False
    )
    op.create_index(
        op.f("ix_offer_choice_product_id"), "offer_choice", ["product_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_offer_choice_product_id"), table_name="offer_choice")
    op.drop_index(op.f("ix_offer_choice_customer_id"), table_name="offer_choice")
    op.drop_index(op.f("ix_offer_choice_campaign_id"), table_name="offer_choice")
    op.drop_table("offer_choice")
