"""Conversions between the domain `Track` and the catalog's protobuf `Track`."""

from __future__ import annotations

import datetime as dt
import uuid

from musicrec.catalog.v1 import catalog_pb2
from musicrec_common.errors import InvalidArgumentError
from musicrec_common.model import GenrePrediction, Track

__all__ = ["normalize_mbid", "track_from_proto", "track_to_proto"]


def normalize_mbid(value: str, field: str) -> str:
    """The canonical lower-case hyphenated form, or InvalidArgumentError naming `field`."""
    try:
        return str(uuid.UUID(value.strip()))
    except (ValueError, AttributeError):
        raise InvalidArgumentError(field, f"{value!r} is not a MusicBrainz id (a UUID)") from None


def _genre_to_proto(genre: GenrePrediction | None) -> catalog_pb2.GenrePrediction | None:
    if genre is None:
        return None
    return catalog_pb2.GenrePrediction(label=genre.label, probability=genre.probability)


def _genre_from_proto(track: catalog_pb2.Track, name: str) -> GenrePrediction | None:
    if not track.HasField(name):  # type: ignore[arg-type]
        return None
    genre: catalog_pb2.GenrePrediction = getattr(track, name)
    return GenrePrediction(label=genre.label, probability=genre.probability)


def track_to_proto(track: Track) -> catalog_pb2.Track:
    message = catalog_pb2.Track(
        mbid=track.mbid,
        submission=track.submission,
        title=track.title or "",
        artist=track.artist or "",
        album=track.album or "",
        is_placeholder_title=track.is_placeholder_title,
        rosamerica=_genre_to_proto(track.rosamerica),
        dortmund=_genre_to_proto(track.dortmund),
        tzanetakis=_genre_to_proto(track.tzanetakis),
    )
    if track.release_date is not None:
        d = track.release_date
        message.release_date.CopyFrom(catalog_pb2.Date(year=d.year, month=d.month, day=d.day))
    if track.year is not None:
        message.year = track.year
    return message


def track_from_proto(message: catalog_pb2.Track, field: str = "track") -> Track:
    """Validates what a client may get wrong: the MBID, the date, the year."""
    release_date: dt.date | None = None
    if message.HasField("release_date"):
        d = message.release_date
        try:
            release_date = dt.date(d.year, d.month, d.day)
        except ValueError:
            raise InvalidArgumentError(
                f"{field}.release_date", f"{d.year:04d}-{d.month:02d}-{d.day:02d} is not a date"
            ) from None
    year = message.year if message.HasField("year") else None
    if year is not None and not 1000 <= year <= 9999:
        raise InvalidArgumentError(f"{field}.year", f"{year} is out of range")
    return Track(
        mbid=normalize_mbid(message.mbid, f"{field}.mbid"),
        submission=message.submission,
        title=message.title or None,
        artist=message.artist or None,
        album=message.album or None,
        release_date=release_date,
        year=year,
        rosamerica=_genre_from_proto(message, "rosamerica"),
        dortmund=_genre_from_proto(message, "dortmund"),
        tzanetakis=_genre_from_proto(message, "tzanetakis"),
        is_placeholder_title=message.is_placeholder_title,
    )
