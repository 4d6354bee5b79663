from __future__ import annotations

import datetime as dt
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from musicrec_common.dates import DateStatus, ReleaseDate, parse_release_date, release_date_from_tags

pytestmark = pytest.mark.unit

OK = DateStatus.OK
MISSING = DateStatus.MISSING
INVALID = DateStatus.INVALID


def ok(year: int, month: int | None = None, day: int | None = None) -> ReleaseDate:
    date = dt.date(year, month, day) if month is not None and day is not None else None
    return ReleaseDate(date, year, OK)


INVALID_DATE = ReleaseDate(None, None, INVALID)
MISSING_DATE = ReleaseDate(None, None, MISSING)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # plain forms
        ("2012", ok(2012)),
        ("1998-06", ok(1998)),
        ("1998-06-23", ok(1998, 6, 23)),
        ("2014-11-10", ok(2014, 11, 10)),
        ("1998-6-3", ok(1998, 6, 3)),
        ("  1998-06-23\n", ok(1998, 6, 23)),
        # other separators and the compact form
        ("1998/06/23", ok(1998, 6, 23)),
        ("1998.06.23", ok(1998, 6, 23)),
        ("1998/06", ok(1998)),
        ("19980623", ok(1998, 6, 23)),
        # SQL and ISO 8601 datetimes
        ("1998-06-23 00:00:00", ok(1998, 6, 23)),
        ("1998-06-23 12:34:56.789", ok(1998, 6, 23)),
        ("1998-06-23T12:34:56", ok(1998, 6, 23)),
        ("1998-06-23T12:34:56Z", ok(1998, 6, 23)),
        ("1998-06-23T12:34:56.123456Z", ok(1998, 6, 23)),
        ("1998-06-23T23:30:00+02:00", ok(1998, 6, 23)),  # local calendar date, not shifted to UTC
        ("1998-06-23T00:30:00-0500", ok(1998, 6, 23)),
        ("1998-06-23T00:30:00-05", ok(1998, 6, 23)),
        ("1998-06-23T12:34", ok(1998, 6, 23)),
        ("1998-06-23t12:34:56z", ok(1998, 6, 23)),
        # a leading year followed by junk: the year only
        ("2004 (remaster)", ok(2004)),
        ("2004, 2011", ok(2004)),
        ("2004-2005", ok(2004)),
        ("2004a", ok(2004)),
        ("2004-", ok(2004)),
        ("1998-06-23 (reissue)", ok(1998)),
        ("1998-06-23T12:34:56 local", ok(1998)),
        ("1998-06/23", ok(1998)),
        ("1998-06-23T12", ok(1998)),
        # zero markers for unknown month / day
        ("2004-00-00", ok(2004)),
        ("2004-05-00", ok(2004)),
        ("20040500", ok(2004)),
        ("20040000", ok(2004)),
        # missing
        ("", MISSING_DATE),
        ("   \t", MISSING_DATE),
        (None, MISSING_DATE),
        (2004, MISSING_DATE),
        (["2004"], MISSING_DATE),
        # impossible values: never a partial guess
        ("0", INVALID_DATE),
        ("0000", INVALID_DATE),
        ("0000-00-00", INVALID_DATE),
        ("0999", INVALID_DATE),
        ("3000", INVALID_DATE),
        ("3000-01-01", INVALID_DATE),
        ("2001-13-01", INVALID_DATE),
        ("2001-13", INVALID_DATE),
        ("2001-02-30", INVALID_DATE),
        ("2001-02-29", INVALID_DATE),
        ("2001-04-31", INVALID_DATE),
        ("2001-00-15", INVALID_DATE),
        ("20011301", INVALID_DATE),
        ("20010230", INVALID_DATE),
        ("2001-13-01 (remaster)", INVALID_DATE),
        ("2001-02-30T00:00:00Z", INVALID_DATE),
        ("1998-06-23T25:00:00", INVALID_DATE),
        ("1998-06-23 12:60:00", INVALID_DATE),
        ("1998-06-23T12:00:61", INVALID_DATE),
        ("1998-06-23T12:00:00+24:00", INVALID_DATE),
        ("3000 (remaster)", INVALID_DATE),
        # free text without a leading year
        ("unknown", INVALID_DATE),
        ("circa 2004", INVALID_DATE),
        ("23/06/1998", INVALID_DATE),
        ("'98", INVALID_DATE),
        ("-2004", INVALID_DATE),
        ("12345", INVALID_DATE),
        ("200406", INVALID_DATE),
        ("199806231200", INVALID_DATE),
        ("２００４", INVALID_DATE),  # full-width digits are not read as a year
        ("٢٠٠٤", INVALID_DATE),
    ],
)
def test_parse_release_date(raw: object, expected: ReleaseDate) -> None:
    assert parse_release_date(raw, max_year=2030) == expected


def test_leap_day() -> None:
    assert parse_release_date("2000-02-29") == ok(2000, 2, 29)
    assert parse_release_date("1900-02-29").status is INVALID


def test_year_range_limits() -> None:
    assert parse_release_date("1000") == ok(1000)
    assert parse_release_date("0999").status is INVALID
    assert parse_release_date("2030", max_year=2030) == ok(2030)
    assert parse_release_date("2031", max_year=2030).status is INVALID


def test_default_max_year_is_next_year() -> None:
    this_year = dt.date.today().year
    assert parse_release_date(str(this_year + 1)) == ok(this_year + 1)
    assert parse_release_date(str(this_year + 2)).status is INVALID


@given(st.dates(min_value=dt.date(1000, 1, 1), max_value=dt.date(2030, 12, 31)))
def test_every_valid_date_round_trips(date: dt.date) -> None:
    expected = ReleaseDate(date, date.year, OK)
    assert parse_release_date(date.isoformat(), max_year=2030) == expected
    assert parse_release_date(date.strftime("%Y%m%d"), max_year=2030) == expected
    assert parse_release_date(date.strftime("%Y/%m/%d"), max_year=2030) == expected


@given(st.text())
def test_never_raises_and_is_consistent(raw: str) -> None:
    result = parse_release_date(raw)
    if result.status is OK:
        assert result.year is not None
        assert result.date is None or result.date.year == result.year
    else:
        assert result.date is None
        assert result.year is None


def test_fast_enough() -> None:
    values = ["1998-06-23", "2012", "2004 (remaster)", "1998-06-23T12:34:56Z", "garbage"] * 2000
    start = time.perf_counter()
    for value in values:
        parse_release_date(value)
    per_call = (time.perf_counter() - start) / len(values)
    assert per_call < 50e-6  # generous: a few µs on a normal machine


class TestFromTags:
    def test_prefers_originaldate(self) -> None:
        tags = {"date": ["1998"], "originaldate": ["1998-06-23"]}
        assert release_date_from_tags(tags) == ok(1998, 6, 23)

    def test_originaldate_wins_even_if_less_precise(self) -> None:
        tags = {"date": ["2014-11-10"], "originaldate": ["1973"]}
        assert release_date_from_tags(tags) == ok(1973)

    def test_falls_back_to_date_then_year(self) -> None:
        assert release_date_from_tags({"date": ["2014-11-10"]}) == ok(2014, 11, 10)
        assert release_date_from_tags({"year": ["1977"]}) == ok(1977)
        assert release_date_from_tags({"originaldate": ["garbage"], "year": ["1977"]}) == ok(1977)

    def test_first_ok_value_in_a_list(self) -> None:
        assert release_date_from_tags({"date": ["", "garbage", "2001-02-03", "1999"]}) == ok(2001, 2, 3)

    def test_keys_case_insensitive(self) -> None:
        assert release_date_from_tags({"OriginalDate": ["1998-06-23"], "DATE": ["2001"]}) == ok(1998, 6, 23)
        assert release_date_from_tags({"Year": ["1977"]}) == ok(1977)

    def test_plain_string_value(self) -> None:
        assert release_date_from_tags({"date": "2012"}) == ok(2012)

    def test_missing(self) -> None:
        assert release_date_from_tags({}) == MISSING_DATE
        assert release_date_from_tags({"title": ["x"], "file_name": "x.mp3"}) == MISSING_DATE
        assert release_date_from_tags({"date": []}) == MISSING_DATE
        assert release_date_from_tags({"date": ["", "  "]}) == MISSING_DATE
        assert release_date_from_tags({"date": None}) == MISSING_DATE
        assert release_date_from_tags({"date": [None, 5]}) == MISSING_DATE

    def test_invalid(self) -> None:
        assert release_date_from_tags({"date": ["2001-13-01"]}) == INVALID_DATE
        assert release_date_from_tags({"date": ["0000"], "originaldate": [""]}) == INVALID_DATE
        assert release_date_from_tags({"date": ["unknown"], "year": ["3000"]}) == INVALID_DATE

    def test_max_year_passed_through(self) -> None:
        assert release_date_from_tags({"date": ["2031"]}, max_year=2030) == INVALID_DATE
        assert release_date_from_tags({"date": ["2030"]}, max_year=2030) == ok(2030)

    def test_non_str_keys_ignored(self) -> None:
        tags: dict[object, object] = {1: ["2001"], "date": ["2002"]}
        assert release_date_from_tags(tags) == ok(2002)  # type: ignore[arg-type]
