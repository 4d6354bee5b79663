"""The catalog's relational schema (SQLAlchemy Core). Migrations in `migrations/` create it.

`title_key` and `artist_key` hold `musicrec_common.text.fold_for_search` of the title and artist
('' when absent); search compares against them. Their B-tree indexes use `text_pattern_ops`, which
serves both equality and left-anchored `LIKE 'prefix%'` under any database collation, so the
ordinary-opclass indexes would be redundant.
"""

from __future__ import annotations

import sqlalchemy as sa

__all__ = ["GENRE_CLASSIFIER_COLUMNS", "metadata", "tracks"]

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

#: The genre models stored per track; each has a label column and a `<name>_probability` column.
GENRE_CLASSIFIER_COLUMNS: tuple[str, ...] = ("rosamerica", "dortmund", "tzanetakis")

tracks = sa.Table(
    "tracks",
    metadata,
    sa.Column("mbid", sa.Uuid(as_uuid=True), primary_key=True),
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
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
    sa.CheckConstraint("completeness BETWEEN 0 AND 5", name="completeness_range"),
    *(
        sa.CheckConstraint(f"({name} IS NULL) = ({name}_probability IS NULL)", name=f"{name}_pair")
        for name in GENRE_CLASSIFIER_COLUMNS
    ),
)

sa.Index(
    "ix_tracks_artist_key_title_key",
    tracks.c.artist_key,
    tracks.c.title_key,
    postgresql_ops={"artist_key": "text_pattern_ops", "title_key": "text_pattern_ops"},
)
sa.Index(
    "ix_tracks_title_key",
    tracks.c.title_key,
    postgresql_ops={"title_key": "text_pattern_ops"},
)
