"""customer register and privacy core

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import oppiva.db

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "customer",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("given_name", sa.String(length=100), nullable=True),
        sa.Column("family_name", sa.String(length=100), nullable=True),
        sa.Column("name_key", sa.String(length=200), nullable=True),
        sa.Column("business_id", sa.String(length=40), nullable=True),
        sa.Column("language", sa.String(length=2), nullable=False),
        sa.Column("birthday", sa.Date(), nullable=True),
        sa.Column("relationship_start", sa.Date(), nullable=False),
        sa.Column("merged_into_id", sa.Integer(), nullable=True),
        sa.Column("created_at", oppiva.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", oppiva.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("erased_at", oppiva.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["merged_into_id"], ["customer.id"], name=op.f("fk_customer_merged_into_id_customer")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer")),
    )
    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_customer_name_key"), ["name_key"], unique=False)
        batch_op.create_index(batch_op.f("ix_customer_status"), ["status"], unique=False)

    op.create_table(
        "address",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("street", sa.String(length=200), nullable=False),
        sa.Column("extra", sa.String(length=200), nullable=True),
        sa.Column("postal_code", sa.String(length=20), nullable=False),
        sa.Column("city", sa.String(length=100), nullable=False),
        sa.Column("region", sa.String(length=100), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("is_primary", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
            name=op.f("fk_address_customer_id_customer"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_address")),
    )
    with op.batch_alter_table("address", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_address_customer_id"), ["customer_id"], unique=False)

    op.create_table(
        "consent_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("effective_at", oppiva.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", oppiva.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
            name=op.f("fk_consent_event_customer_id_customer"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_event")),
    )
    with op.batch_alter_table("consent_event", schema=None) as batch_op:
        batch_op.create_index(
            "ix_consent_event_lookup", ["customer_id", "purpose", "channel"], unique=False
        )

    op.create_table(
        "contact_person",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=100), nullable=False),
        sa.Column("since", sa.Date(), nullable=True),
        sa.Column("created_at", oppiva.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["customer.id"],
            name=op.f("fk_contact_person_organisation_id_customer"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["customer.id"],
            name=op.f("fk_contact_person_person_id_customer"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_person")),
    )
    with op.batch_alter_table("contact_person", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_contact_person_organisation_id"), ["organisation_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_contact_person_person_id"), ["person_id"], unique=False
        )

    op.create_table(
        "customer_merge",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("survivor_id", sa.Integer(), nullable=False),
        sa.Column("absorbed_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("merged_by", sa.String(length=100), nullable=False),
        sa.Column("merged_at", oppiva.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("filled_fields", sa.JSON(), nullable=False),
        sa.Column("unmerged_at", oppiva.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("unmerged_by", sa.String(length=100), nullable=True),
        sa.Column("unmerge_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["absorbed_id"], ["customer.id"], name=op.f("fk_customer_merge_absorbed_id_customer")
        ),
        sa.ForeignKeyConstraint(
            ["survivor_id"], ["customer.id"], name=op.f("fk_customer_merge_survivor_id_customer")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_merge")),
    )
    with op.batch_alter_table("customer_merge", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_customer_merge_absorbed_id"), ["absorbed_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_customer_merge_survivor_id"), ["survivor_id"], unique=False
        )

    op.create_table(
        "identity",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=320), nullable=False),
        sa.Column("display", sa.String(length=320), nullable=False),
        sa.Column("label", sa.String(length=40), nullable=True),
        sa.Column("is_primary", sa.Boolean(), nullable=False),
        sa.Column("created_at", oppiva.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
            name=op.f("fk_identity_customer_id_customer"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity")),
        sa.UniqueConstraint("kind", "value", name=op.f("uq_identity_kind_value")),
    )
    with op.batch_alter_table("identity", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_identity_customer_id"), ["customer_id"], unique=False)

    op.create_table(
        "interaction",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("occurred_at", oppiva.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("direction", sa.String(length=16), nullable=False),
        sa.Column("staff", sa.String(length=100), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("object_type", sa.String(length=40), nullable=True),
        sa.Column("object_ref", sa.String(length=100), nullable=True),
        sa.Column("required_by_law", sa.Boolean(), nullable=False),
        sa.Column("created_at", oppiva.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
            name=op.f("fk_interaction_customer_id_customer"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_interaction")),
    )
    with op.batch_alter_table("interaction", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_interaction_customer_id"), ["customer_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_interaction_occurred_at"), ["occurred_at"], unique=False
        )

    op.create_table(
        "preference_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("value", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("effective_at", oppiva.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", oppiva.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
            name=op.f("fk_preference_event_customer_id_customer"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_preference_event")),
    )
    with op.batch_alter_table("preference_event", schema=None) as batch_op:
        batch_op.create_index("ix_preference_event_lookup", ["customer_id", "name"], unique=False)

    op.create_table(
        "merge_move",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("merge_id", sa.Integer(), nullable=False),
        sa.Column("table_name", sa.String(length=64), nullable=False),
        sa.Column("column_name", sa.String(length=64), nullable=False),
        sa.Column("row_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["merge_id"],
            ["customer_merge.id"],
            name=op.f("fk_merge_move_merge_id_customer_merge"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_merge_move")),
    )
    with op.batch_alter_table("merge_move", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_merge_move_merge_id"), ["merge_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("merge_move", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_merge_move_merge_id"))

    op.drop_table("merge_move")
    with op.batch_alter_table("preference_event", schema=None) as batch_op:
        batch_op.drop_index("ix_preference_event_lookup")

    op.drop_table("preference_event")
    with op.batch_alter_table("interaction", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_interaction_occurred_at"))
        batch_op.drop_index(batch_op.f("ix_interaction_customer_id"))

    op.drop_table("interaction")
    with op.batch_alter_table("identity", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_identity_customer_id"))

    op.drop_table("identity")
    with op.batch_alter_table("customer_merge", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_customer_merge_survivor_id"))
        batch_op.drop_index(batch_op.f("ix_customer_merge_absorbed_id"))

    op.drop_table("customer_merge")
    with op.batch_alter_table("contact_person", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contact_person_person_id"))
        batch_op.drop_index(batch_op.f("ix_contact_person_organisation_id"))

    op.drop_table("contact_person")
    with op.batch_alter_table("consent_event", schema=None) as batch_op:
        batch_op.drop_index("ix_consent_event_lookup")

    op.drop_table("consent_event")
    with op.batch_alter_table("address", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_address_customer_id"))

    op.drop_table("address")
    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_customer_status"))
        batch_op.drop_index(batch_op.f("ix_customer_name_key"))

    op.drop_table("customer")
