from __future__ import annotations

import re
from importlib import resources

import pytest

from musicrec_common.placeholders import (
    is_placeholder_title,
    load_placeholder_list,
    parse_placeholder_list,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "title",
    [
        # the required entries
        "[untitled]",
        "[unknown]",
        "untitled",
        "unknown",
        "no title",
        "[no title]",
        "track",
        "intro",
        "outro",
        "end credits",
        "finale",
        "interlude",
        "silence",
        "[silence]",
        "hidden track",
        "bonus track",
        "data track",
        # case, accents, width and whitespace do not matter
        "Untitled",
        "UNTITLED",
        "  Intro ",
        "End  Credits",
        "[Untitled]",
        "(Untitled)",
        "<unknown>",
        "[ untitled ]",
        "[data track]",
        "Ｉｎｔｒｏ",
        # numbered generic titles
        "Track 1",
        "Track 01",
        "track01",
        "TRACK 12",
        "Track #3",
        "Track No. 4",
        "Track-05",
        "track_06",
        "Piste 3",
        "Pista 07",
        "Traccia 2",
        "Faixa 1",
        "Titel 9",
        "トラック1",
        "トラック 12",
        "Audio Track",
        "Audio Track 03",
        "AudioTrack 3",
        "CD Track 04",
        "Untitled 3",
        "untitled02",
        "Untitled #2",
        "Untitled Track 4",
        "01",
        "0",
        "007",
        # other languages
        "Sin título",
        "Sans titre",
        "Ohne Titel",
        "Senza titolo",
        "Без названия",
        "無題",
    ],
)
def test_placeholders(title: str) -> None:
    assert is_placeholder_title(title)


@pytest.mark.parametrize(
    "title",
    [
        "Nascence",
        "The Lost Art of Conversation",
        "La Grange",
        "Enter Sandman",
        # real song titles that merely contain a placeholder word or are numbers
        "Intro / Sweet Emotion",
        "Untitled (How Does It Feel)",
        "Track 01 - Enter Sandman",
        "Back on Track",
        "The Unknown",
        "Silence Is Golden",
        "Finale: Ode to Joy",
        "1999",
        "22",
        "7",
        "2112",
        "(Untitled) Love Song",
        "[untitled] [untitled]",
        "トラック",  # "track" in katakana alone is not listed
        "",
        "   ",
        "[]",
        "()",
    ],
)
def test_not_placeholders(title: str) -> None:
    assert not is_placeholder_title(title)


def test_none_is_not_a_placeholder() -> None:
    assert is_placeholder_title(None) is False


def test_list_is_cached() -> None:
    assert load_placeholder_list() is load_placeholder_list()


def test_packaged_file_parses_and_is_not_empty() -> None:
    text = (
        resources.files("musicrec_common")
        .joinpath("data")
        .joinpath("placeholder_titles.txt")
        .read_text(encoding="utf-8")
    )
    parsed = parse_placeholder_list(text)
    assert "untitled" in parsed.literals
    assert "[untitled]" in parsed.literals
    assert parsed.pattern is not None
    # Every regex entry compiles on its own, and literals are stored folded.
    for line in text.splitlines():
        if line.startswith("re:"):
            re.compile(line[3:])
    assert all(literal == literal.strip() and literal == literal.casefold() for literal in parsed.literals)


def test_parse_format() -> None:
    parsed = parse_placeholder_list("# a comment\n\n  Sans Titre  \nMotörhead\nre:foo\\s*[0-9]+\nre:bar\n")
    assert parsed.literals == frozenset({"sans titre", "motorhead"})
    assert parsed.matches("SANS TITRE")
    assert parsed.matches("MOTORHEAD")
    assert parsed.matches("Foo 12")
    assert parsed.matches("bar")
    assert not parsed.matches("barbar")  # regexes must match the whole title
    assert not parsed.matches("foo")
    assert not parsed.matches("xfoo 1")


def test_parse_without_regexes() -> None:
    parsed = parse_placeholder_list("only\n")
    assert parsed.pattern is None
    assert parsed.matches("Only")
    assert not parsed.matches("other")


def test_bad_regex_is_reported_with_its_line() -> None:
    with pytest.raises(re.error, match="line 2"):
        parse_placeholder_list("ok\nre:(unclosed\n")
