"""Create the tracks table and its search indexes.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "tracks",
        sa.Column("mbid", sa.Uuid(), nullable=False),
        sa.Column("submission", sa.Integer(), nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("artist", sa.Text(), nullable=True),
        sa.Column("album", sa.Text(), nullable=True),
        sa.Column("release_date", sa.Date(), nullable=True),
        sa.Column("year", sa.SmallInteger(), nullable=True),
        sa.Column("title_key", sa.Text(), nullable=False),
        sa.Column("artist_key", sa.Text(), nullable=False),
        sa.Column("rosamerica", sa.Text(), nullable=True),
        sa.Column("rosamerica_probability", sa.REAL(), nullable=True),
        sa.Column("dortmund", sa.Text(), nullable=True),
        sa.Column("dortmund_probability", sa.REAL(), nullable=True),
        sa.Column("tzanetakis", sa.Text(), nullable=True),
        sa.Column("tzanetakis_probability", sa.REAL(), nullable=True),
        sa.Column("is_placeholder_title", sa.Boolean(), nullable=False),
        sa.Column("completeness", sa.SmallInteger(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("mbid", name=op.f("pk_tracks")),
        sa.CheckConstraint("completeness BETWEEN 0 AND 5", name=op.f("ck_tracks_completeness_range")),
        sa.CheckConstraint(
            "(rosamerica IS NULL) = (rosamerica_probability IS NULL)", name=op.f("ck_tracks_rosamerica_pair")
        ),
        sa.CheckConstraint(
            "(dortmund IS NULL) = (dortmund_probability IS NULL)", name=op.f("ck_tracks_dortmund_pair")
        ),
        sa.CheckConstraint(
            "(tzanetakis IS NULL) = (tzanetakis_probability IS NULL)", name=op.f("ck_tracks_tzanetakis_pair")
        ),
    )
    # text_pattern_ops serves both equality and left-anchored LIKE 'prefix%' whatever the collation.
    op.create_index(
        op.f("ix_tracks_artist_key_title_key"),
        "tracks",
        ["artist_key", "title_key"],
        postgresql_ops={"artist_key": "text_pattern_ops", "title_key": "text_pattern_ops"},
    )
    op.create_index(
        op.f("ix_tracks_title_key"),
        "tracks",
        ["title_key"],
        postgresql_ops={"title_key": "text_pattern_ops"},
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_tracks_title_key"), table_name="tracks")
    op.drop_index(op.f("ix_tracks_artist_key_title_key"), table_name="tracks")
    op.drop_table("tracks")
