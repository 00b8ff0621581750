"""loyalty tiers

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import oppiva.db

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "loyalty_tier_change",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("programme_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("from_tier", sa.String(length=40), nullable=True),
        sa.Column("to_tier", sa.String(length=40), nullable=True),
        sa.Column("at", oppiva.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("kept_until", sa.Date(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
            name=op.f("fk_loyalty_tier_change_customer_id_customer"),
        ),
        sa.ForeignKeyConstraint(
            ["programme_id"],
            ["loyalty_programme.id"],
            name=op.f("fk_loyalty_tier_change_programme_id_loyalty_programme"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loyalty_tier_change")),
    )
    with op.batch_alter_table("loyalty_tier_change", schema=None) as batch_op:
        batch_op.create_index(
            "ix_loyalty_tier_change_programme_id_customer_id",
            ["programme_id", "customer_id"],
            unique=False,
        )

    with op.batch_alter_table("loyalty_membership", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tier", sa.String(length=40), nullable=True))
        batch_op.add_column(
            sa.Column("tier_since", oppiva.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("tier_kept_until", sa.Date(), nullable=True))

    with op.batch_alter_table("loyalty_programme", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tiers", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("loyalty_programme", schema=None) as batch_op:
        batch_op.drop_column("tiers")

    with op.batch_alter_table("loyalty_membership", schema=None) as batch_op:
        batch_op.drop_column("tier_kept_until")
        batch_op.drop_column("tier_since")
        batch_op.drop_column("tier")

    with op.batch_alter_table("loyalty_tier_change", schema=None) as batch_op:
        batch_op.drop_index("ix_loyalty_tier_change_programme_id_customer_id")

    op.drop_table("loyalty_tier_change")
