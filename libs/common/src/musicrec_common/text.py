"""Text cleaning for tag values and search keys.

Two different operations live here and must not be confused:

- `normalize_text` cleans a value for *storage and display*. It only applies Unicode NFC, trims and
  collapses whitespace, and removes a few invisible characters that are never meaningful in a title
  and break storage (C0/C1 control characters such as NUL, which PostgreSQL `text` rejects; lone
  surrogates, which cannot be encoded as UTF-8; the byte-order mark U+FEFF that taggers sometimes leak
  into the first frame). Letters of any script, punctuation, emoji and joiners are kept exactly.
- `fold_for_search` builds a *search key*: compatibility-decomposed, accent-free and case-folded. It is
  lossy on purpose and never shown to users.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["fold_for_search", "normalize_text", "split_artist_title"]

# Python's `\s` on str patterns is Unicode-aware: it covers NBSP, U+3000 IDEOGRAPHIC SPACE, the
# U+2000..U+200A spaces, line/paragraph separators and the \x1c-\x1f/\x85 controls str.isspace() accepts.
_WHITESPACE_RUN = re.compile(r"\s+")

# Control characters that are not whitespace (the whitespace ones are collapsed instead), the BOM,
# and lone surrogates.
_INVISIBLE_JUNK = re.compile("[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f\ufeff\ud800-\udfff]")

# Combining marks that fold_for_search keeps: the kana voicing marks. Dropping them would turn
# "ガ" into "カ" (a different syllable), which is not an accent difference.
_KEPT_MARKS = frozenset({"\u3099", "\u309a"})

# " - ", " – " (en dash) and " — " (em dash) with whitespace on both sides.
_ARTIST_TITLE_SEPARATOR = re.compile(r"\s+[-\u2013\u2014]\s+")


def normalize_text(value: object) -> str | None:
    """Clean one tag value for storage: NFC, trimmed, whitespace runs collapsed to one space.

    Returns None for anything that is not a `str` and for strings that are empty after cleaning.
    Non-Latin scripts are only NFC-normalised, never transliterated.

    >>> normalize_text("  Pink   Floyd\\n")
    'Pink Floyd'
    >>> normalize_text(["Pink Floyd"]) is None
    True
    """
    if not isinstance(value, str):
        return None
    text = value
    if not text.isascii():
        text = _INVISIBLE_JUNK.sub("", text)
        text = unicodedata.normalize("NFC", text)
    elif not text.isprintable():
        text = _INVISIBLE_JUNK.sub("", text)
    text = _WHITESPACE_RUN.sub(" ", text).strip()
    return text or None


def fold_for_search(value: str) -> str:
    """The key for case- and accent-insensitive comparison of titles and names.

    NFKD decomposition (so full-width letters, ligatures and compatibility forms match their plain
    forms), case folding, removal of combining marks (Unicode category Mn, except the kana voicing
    marks, see below), whitespace collapsed and trimmed. The result is re-composed with NFC so that
    scripts such as Hangul and kana read as normal text. The function is idempotent.

    "Motörhead" and "MOTORHEAD" both fold to "motorhead", "Beyoncé" to "beyonce", "Straße" to
    "strasse"; Cyrillic is case-folded ("ПРИВЕТ" → "привет"); Japanese stays Japanese — voiced kana keep
    their voicing mark because "ガ" and "カ" are different syllables, not accent variants.
    """
    if value.isascii():
        return _WHITESPACE_RUN.sub(" ", value.lower()).strip()
    text = unicodedata.normalize("NFKD", value).casefold()
    # Case folding can produce new decomposable characters (e.g. U+0130 → "i" + U+0307), so decompose
    # once more before dropping the marks.
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if ch in _KEPT_MARKS or unicodedata.category(ch) != "Mn")
    text = unicodedata.normalize("NFC", text)
    return _WHITESPACE_RUN.sub(" ", text).strip()


def split_artist_title(query: str) -> tuple[str | None, str]:
    """Split a free-text query "Artist - Title" into (artist, title).

    Splits on the first hyphen, en dash or em dash that has whitespace on both sides, so hyphenated
    names survive ("Jay-Z - 99 Problems" → ("Jay-Z", "99 Problems")). Without a separator, or when one
    side would be empty, the whole (normalised) query is the title and the artist is None.
    """
    text = normalize_text(query) or ""
    match = _ARTIST_TITLE_SEPARATOR.search(text)
    if match is None:
        return None, text
    artist = normalize_text(text[: match.start()])
    title = normalize_text(text[match.end() :])
    if artist is None or title is None:
        return None, text
    return artist, title
