"""silent programmes, budgets and behaviour events

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import oppiva.db

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}")
    )


def upgrade() -> None:
    op.create_table(
        "loyalty_behaviour",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("programme_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("event", sa.String(length=40), nullable=False),
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("external_id", sa.String(length=100), nullable=False),
        sa.Column("occurred_at", oppiva.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("business_date", sa.Date(), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("parts", sa.JSON(), nullable=False),
        sa.Column("lot_id", BIG_ID, nullable=True),
        sa.Column("created_at", oppiva.db.UTCDateTime(timezone=True), nullable=False),
        _fk("loyalty_behaviour", "customer_id", "customer"),
        _fk("loyalty_behaviour", "lot_id", "points_lot"),
        _fk("loyalty_behaviour", "programme_id", "loyalty_programme"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loyalty_behaviour")),
        sa.UniqueConstraint(
            "programme_id",
            "source",
            "external_id",
            name=op.f("uq_loyalty_behaviour_programme_id_source_external_id"),
        ),
    )
    op.create_index(
        "ix_loyalty_behaviour_programme_id_customer_id",
        "loyalty_behaviour",
        ["programme_id", "customer_id"],
    )
    op.create_table(
        "loyalty_silent_settings",
        sa.Column("programme_id", sa.Integer(), nullable=False),
        sa.Column("criteria", sa.Text(), nullable=True),
        sa.Column("control_percent", sa.Integer(), nullable=False),
        sa.Column("budget_cents", sa.BigInteger(), nullable=True),
        sa.Column("point_value_cents", sa.Numeric(12, 4), nullable=False),
        sa.Column("target", sa.String(length=16), nullable=False),
        sa.Column("target_cents", sa.BigInteger(), nullable=True),
        sa.Column("period_days", sa.Integer(), nullable=False),
        sa.Column("updated_at", oppiva.db.UTCDateTime(timezone=True), nullable=False),
        _fk("loyalty_silent_settings", "programme_id", "loyalty_programme"),
        sa.PrimaryKeyConstraint("programme_id", name=op.f("pk_loyalty_silent_settings")),
    )
    op.create_table(
        "loyalty_selection",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("programme_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("group", sa.String(length=16), nullable=False),
        sa.Column("selected_at", oppiva.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", oppiva.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("analysis_run_id", sa.Integer(), nullable=True),
        _fk("loyalty_selection", "customer_id", "customer"),
        _fk("loyalty_selection", "programme_id", "loyalty_programme"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loyalty_selection")),
    )
    op.create_index(
        "ix_loyalty_selection_programme_id_customer_id",
        "loyalty_selection",
        ["programme_id", "customer_id"],
    )
    op.create_table(
        "loyalty_benefit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("programme_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("unit_cost_cents", sa.Integer(), nullable=False),
        sa.Column("created_at", oppiva.db.UTCDateTime(timezone=True), nullable=False),
        _fk("loyalty_benefit", "programme_id", "loyalty_programme"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loyalty_benefit")),
        sa.UniqueConstraint(
            "programme_id", "key", name=op.f("uq_loyalty_benefit_programme_id_key")
        ),
    )
    op.create_table(
        "loyalty_benefit_grant",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("programme_id", sa.Integer(), nullable=False),
        sa.Column("benefit_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("cost_cents", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("external_id", sa.String(length=100), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("staff", sa.String(length=100), nullable=True),
        sa.Column("granted_at", oppiva.db.UTCDateTime(timezone=True), nullable=False),
        _fk("loyalty_benefit_grant", "benefit_id", "loyalty_benefit"),
        _fk("loyalty_benefit_grant", "customer_id", "customer"),
        _fk("loyalty_benefit_grant", "programme_id", "loyalty_programme"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loyalty_benefit_grant")),
        sa.UniqueConstraint(
            "programme_id",
            "source",
            "external_id",
            name=op.f("uq_loyalty_benefit_grant_programme_id_source_external_id"),
        ),
    )
    op.create_index(
        "ix_loyalty_benefit_grant_programme_id_customer_id",
        "loyalty_benefit_grant",
        ["programme_id", "customer_id"],
    )
    op.create_table(
        "loyalty_budget_snapshot",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("programme_id", sa.Integer(), nullable=False),
        sa.Column("at", oppiva.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("members", sa.Integer(), nullable=False),
        sa.Column("benefits_cents", sa.BigInteger(), nullable=False),
        sa.Column("points_cents", sa.BigInteger(), nullable=False),
        sa.Column("result_cents", sa.BigInteger(), nullable=True),
        _fk("loyalty_budget_snapshot", "programme_id", "loyalty_programme"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loyalty_budget_snapshot")),
    )
    op.create_index(
        "ix_loyalty_budget_snapshot_programme_id_at",
        "loyalty_budget_snapshot",
        ["programme_id", "at"],
    )
    op.create_table(
        "loyalty_account_merge",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("merge_id", sa.Integer(), nullable=False),
        sa.Column("programme_id", sa.Integer(), nullable=False),
        sa.Column("membership", sa.JSON(), nullable=False),
        sa.Column("survivor", sa.JSON(), nullable=False),
        sa.Column("unmerged_at", oppiva.db.UTCDateTime(timezone=True), nullable=True),
        _fk("loyalty_account_merge", "merge_id", "customer_merge"),
        _fk("loyalty_account_merge", "programme_id", "loyalty_programme"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loyalty_account_merge")),
    )
    op.create_index(
        op.f("ix_loyalty_account_merge_merge_id"), "loyalty_account_merge", ["merge_id"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_loyalty_account_merge_merge_id"), table_name="loyalty_account_merge")
    op.drop_table("loyalty_account_merge")
    op.drop_index(
        "ix_loyalty_budget_snapshot_programme_id_at", table_name="loyalty_budget_snapshot"
    )
    op.drop_table("loyalty_budget_snapshot")
    op.drop_index(
        "ix_loyalty_benefit_grant_programme_id_customer_id", table_name="loyalty_benefit_grant"
    )
    op.drop_table("loyalty_benefit_grant")
    op.drop_table("loyalty_benefit")
    op.drop_index("ix_loyalty_selection_programme_id_customer_id", table_name="loyalty_selection")
    op.drop_table("loyalty_selection")
    op.drop_table("loyalty_silent_settings")
    op.drop_index("ix_loyalty_behaviour_programme_id_customer_id", table_name="loyalty_behaviour")
    op.drop_table("loyalty_behaviour")
