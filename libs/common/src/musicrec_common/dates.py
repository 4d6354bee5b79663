"""Release dates from free-form tag values.

Tag dates come from whatever tagger wrote the file, so the parser accepts the forms seen in the wild
and refuses to guess: a value is either read exactly (`OK`), absent (`MISSING`) or corrupt (`INVALID`).
Partial dates are fine — "1998" and "1998-06" give the year only; the full `date` is kept only when a
valid day is present.

Accepted forms (surrounding whitespace ignored):

- ``YYYY``, ``YYYY-MM``, ``YYYY-MM-DD`` (month and day may have one digit);
- ``YYYY/MM/DD``, ``YYYY.MM.DD`` (and ``YYYY/MM``, ``YYYY.MM``) — the separator must not change;
- ``YYYYMMDD`` (exactly eight digits);
- a full date followed by a time: SQL ``YYYY-MM-DD HH:MM[:SS[.fff]]`` or ISO 8601
  ``YYYY-MM-DDTHH:MM[:SS[.fff]]``, optionally followed by ``Z`` or an offset ``±hh``, ``±hh:mm``,
  ``±hhmm``. The time is validated but otherwise ignored: the calendar date as written is the release
  date (converting to UTC could move it to the previous or next day);
- a leading four-digit year followed by anything else (``2004 (remaster)``, ``1998-06-23, reissue``) →
  the year only. Whatever date-like prefix precedes the junk is still validated, so ``2001-13-01 foo``
  is INVALID rather than 2001.

Zeroes as "unknown" markers (``2004-00-00``, ``2004-05-00``, as written by Discogs-based taggers) are
read as the partial date they stand for; a zero month followed by a non-zero day is corrupt.

Years must lie in 1000..max_year, where max_year defaults to next year (releases are sometimes tagged
with their announced date).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["DateStatus", "ReleaseDate", "parse_release_date", "release_date_from_tags"]

MIN_YEAR = 1000


class DateStatus(StrEnum):
    """What `parse_release_date` made of a value."""

    OK = "ok"
    MISSING = "missing"
    INVALID = "invalid"


@dataclass(frozen=True, slots=True)
class ReleaseDate:
    """A parsed release date. `date` is set only for complete dates; `year` for any OK value."""

    date: dt.date | None
    year: int | None
    status: DateStatus


_MISSING = ReleaseDate(None, None, DateStatus.MISSING)
_INVALID = ReleaseDate(None, None, DateStatus.INVALID)

# Everything is ASCII-only ([0-9], not \d, which would accept other scripts' digits).
_TIME = (
    r"(?:[Tt ](?P<hour>[0-9]{2}):(?P<minute>[0-9]{2})(?::(?P<second>[0-9]{2})(?:[.,][0-9]+)?)?"
    r"(?:[Zz]|[+-](?P<oh>[0-9]{2})(?::?(?P<om>[0-9]{2}))?)?)"
)
# A four-digit year, optionally followed by month and day with one repeated separator. Each part
# must end at a non-digit, so "2004-2005" is a year followed by junk, not month 20.
_DATE_PREFIX = re.compile(
    r"(?P<year>[0-9]{4})(?![0-9])"
    r"(?:(?P<sep>[-/.])(?P<month>[0-9]{1,2})(?![0-9])"
    r"(?:(?P=sep)(?P<day>[0-9]{1,2})(?![0-9]))?)?"
)
_TIME_TAIL = re.compile(_TIME)
_COMPACT = re.compile(r"(?P<year>[0-9]{4})(?P<month>[0-9]{2})(?P<day>[0-9]{2})")


def _default_max_year() -> int:
    return dt.date.today().year + 1


def _time_is_valid(match: re.Match[str]) -> bool:
    hour, minute, second = match.group("hour", "minute", "second")
    if int(hour) > 23 or int(minute) > 59 or (second is not None and int(second) > 60):
        return False
    offset_hour, offset_minute = match.group("oh", "om")
    if offset_hour is not None and int(offset_hour) > 23:
        return False
    return offset_minute is None or int(offset_minute) <= 59


def _build(year: int, month: int, day: int, max_year: int) -> ReleaseDate:
    """Validate the numeric parts; month/day 0 mean "unknown" (0 month needs 0 day)."""
    if not MIN_YEAR <= year <= max_year:
        return _INVALID
    if month == 0:
        return ReleaseDate(None, year, DateStatus.OK) if day == 0 else _INVALID
    if month > 12:
        return _INVALID
    if day == 0:
        return ReleaseDate(None, year, DateStatus.OK)
    try:
        date = dt.date(year, month, day)
    except ValueError:
        return _INVALID
    return ReleaseDate(date, year, DateStatus.OK)


def parse_release_date(raw: object, max_year: int | None = None) -> ReleaseDate:
    """Parse one tag value into a `ReleaseDate` (see the module docstring for the accepted forms).

    Empty, whitespace-only, None and non-str values are MISSING. Values without a leading four-digit
    year, and values with an impossible part (year outside 1000..max_year, month 13, 30 February,
    hour 25) are INVALID with neither date nor year: a corrupt value is not trusted partially.
    `max_year` defaults to the current year + 1, read at call time.
    """
    if not isinstance(raw, str):
        return _MISSING
    text = raw.strip()
    if not text:
        return _MISSING
    limit = _default_max_year() if max_year is None else max_year

    compact = _COMPACT.fullmatch(text)
    if compact is not None:
        return _build(int(compact["year"]), int(compact["month"]), int(compact["day"]), limit)

    prefix = _DATE_PREFIX.match(text)
    if prefix is None:
        return _INVALID
    year = int(prefix["year"])
    month_text, day_text = prefix.group("month", "day")
    month = 0 if month_text is None else int(month_text)
    day = 0 if day_text is None else int(day_text)
    parsed = _build(year, month, day, limit)
    if parsed.status is not DateStatus.OK:
        return parsed

    end = prefix.end()
    if end == len(text):
        return parsed
    if day_text is not None:
        time = _TIME_TAIL.fullmatch(text, end)
        if time is not None:
            return parsed if _time_is_valid(time) else _INVALID
    # A valid date-like prefix followed by something we do not read: trust the year only.
    return parsed if parsed.date is None else ReleaseDate(None, year, DateStatus.OK)


# Preference order. `originaldate` is the date of the first release of the recording's release
# group (Picard's "original release date"); `date` is the date of the particular release the file
# was tagged from, which may be a much later reissue or compilation. For "when is this song from",
# the original date is the better answer, so it comes first.
_DATE_TAGS = ("originaldate", "date", "year")


def _tag_values(value: object) -> Iterable[object]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple):
        return value
    return ()


def release_date_from_tags(tags: Mapping[str, object], max_year: int | None = None) -> ReleaseDate:
    """The release date of a document from its `metadata.tags` (keys matched case-insensitively).

    Tags are tried in the order `originaldate`, `date`, `year` — `originaldate` first because it is
    the first release of the recording, while `date` belongs to the specific (possibly reissued)
    release that was tagged. Within a tag, values are tried in list order; the first value that
    parses OK wins. If no value parses OK, the result is INVALID when at least one non-empty value was
    present and MISSING otherwise (so `date: [""]` counts as missing, not as corrupt).
    Values may be lists of strings (the dump's form) or a plain string.
    """
    found: dict[str, list[object]] = {}
    for key, value in tags.items():
        if not isinstance(key, str):
            continue
        lowered = key.lower()
        if lowered in _DATE_TAGS:
            found.setdefault(lowered, []).extend(_tag_values(value))
    if not found:
        return _MISSING
    limit = _default_max_year() if max_year is None else max_year
    saw_invalid = False
    for name in _DATE_TAGS:
        for value in found.get(name, ()):
            parsed = parse_release_date(value, limit)
            if parsed.status is DateStatus.OK:
                return parsed
            if parsed.status is DateStatus.INVALID:
                saw_invalid = True
    return _INVALID if saw_invalid else _MISSING
