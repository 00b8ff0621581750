"""offer candidates

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GRANTS = {"offers:read": ("service", "marketing"), "offers:write": ("marketing",)}


def upgrade() -> None:
    op.create_table(
        "offer_candidate",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("recommender", sa.String(length=16), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=True),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("reason_params", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
            name=op.f("fk_offer_candidate_customer_id_customer"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["product.id"],
            name=op.f("fk_offer_candidate_product_id_product"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_offer_candidate")),
    )
    with op.batch_alter_table("offer_candidate", schema=None) as batch_op:
        batch_op.create_index(
            "ix_offer_candidate_customer_id_kind_rank", ["customer_id", "kind", "rank"]
        )
    for permission, roles in GRANTS.items():
        _grant(permission, roles)


def _grant(permission: str, roles: Sequence[str], grant: bool = True) -> None:
    """Give (or take back) a permission of the seeded roles; roles are data, so edit rows."""
    role = sa.table("role", sa.column("name", sa.String), sa.column("permissions", sa.JSON))
    bind = op.get_bind()
    for name, permissions in bind.execute(sa.select(role.c.name, role.c.permissions)).all():
        if name not in roles:
            continue
        kept = [p for p in permissions if p != permission] + ([permission] if grant else [])
        bind.execute(role.update().where(role.c.name == name).values(permissions=kept))


def downgrade() -> None:
    for permission, roles in GRANTS.items():
        _grant(permission, roles, grant=False)
    with op.batch_alter_table("offer_candidate", schema=None) as batch_op:
        batch_op.drop_index("ix_offer_candidate_customer_id_kind_rank")
    op.drop_table("offer_candidate")
