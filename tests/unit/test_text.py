from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from musicrec_common.text import fold_for_search, normalize_text, split_artist_title

pytestmark = pytest.mark.unit


class TestNormalizeText:
    @pytest.mark.parametrize(
        ("raw", "expected"),
        [
            ("Pink Floyd", "Pink Floyd"),
            ("  Pink   Floyd \n", "Pink Floyd"),
            ("La\tGrange", "La Grange"),
            ("a\r\n\r\nb", "a b"),
            ("no\u00a0break\u3000ideographic\u2003em", "no break ideographic em"),
            ("Armageddon:The Album", "Armageddon:The Album"),
            ("", None),
            ("   \t\n ", None),
            ("\u00a0\u3000", None),
        ],
    )
    def test_whitespace_and_empty(self, raw: str, expected: str | None) -> None:
        assert normalize_text(raw) == expected

    @pytest.mark.parametrize("raw", [None, 5, 3.5, True, ["Pink Floyd"], {"a": 1}, b"Pink Floyd"])
    def test_non_str_is_none(self, raw: object) -> None:
        assert normalize_text(raw) is None

    def test_nfc(self) -> None:
        decomposed = "Beyonce\u0301 Moto\u0308rhead"
        assert normalize_text(decomposed) == "Beyoncé Motörhead"
        result = normalize_text(decomposed)
        assert result is not None
        assert unicodedata.is_normalized("NFC", result)

    @pytest.mark.parametrize(
        "text",
        [
            "残酷な天使のテーゼ",
            "高橋洋子",
            "ｶﾀｶﾅ",  # half-width katakana is a compatibility form: NFC keeps it
            "Кино — Группа крови",
            "Ёлка",
            "한국어 노래",
            "موسيقى",
            "🎸 Rock 👩\u200d🎤 ❤\ufe0f",  # emoji, ZWJ sequence and variation selector are kept
            "Sigur Rós – Hoppípolla",
            "ﬁ ligature",  # compatibility ligature survives NFC
        ],
    )
    def test_non_latin_scripts_kept_exactly(self, text: str) -> None:
        assert normalize_text(text) == text

    def test_invisible_junk_removed(self) -> None:
        assert normalize_text("\ufeffTitle") == "Title"
        assert normalize_text("Ti\x00tle\x07") == "Title"
        assert normalize_text("Caf\u00e9\x00") == "Café"
        assert normalize_text("\x00") is None
        assert normalize_text("lone \ud800 surrogate") == "lone surrogate"
        assert normalize_text("c1\x9bcontrol") == "c1control"

    @given(st.text())
    def test_properties(self, raw: str) -> None:
        result = normalize_text(raw)
        if result is None:
            return
        assert result == result.strip()
        assert "  " not in result
        assert unicodedata.is_normalized("NFC", result)
        assert normalize_text(result) == result
        result.encode("utf-8")  # storable: no lone surrogates


class TestFoldForSearch:
    @pytest.mark.parametrize(
        ("left", "right"),
        [
            ("Motörhead", "MOTORHEAD"),
            ("Beyoncé", "beyonce"),
            ("Beyonce\u0301", "BEYONCÉ"),
            ("Straße", "STRASSE"),
            ("  Sigur   Rós ", "sigur ros"),
            ("ＡＢＣ", "abc"),  # full-width
            ("ﬁne", "FINE"),  # ligature
            ("İstanbul", "istanbul"),
            ("Nguyễn", "nguyen"),
            ("ПРИВЕТ", "привет"),
            ("Ёлка", "елка"),
            ("ｶﾞﾝﾀﾞﾑ", "ガンダム"),  # half-width katakana with voicing mark
        ],
    )
    def test_equal_after_folding(self, left: str, right: str) -> None:
        assert fold_for_search(left) == fold_for_search(right)

    def test_values(self) -> None:
        assert fold_for_search("Motörhead") == "motorhead"
        assert fold_for_search("Beyoncé") == "beyonce"
        assert fold_for_search("ПРИВЕТ Мир") == "привет мир"
        assert fold_for_search(" The  Lost\tArt ") == "the lost art"
        assert fold_for_search("") == ""

    @pytest.mark.parametrize("text", ["残酷な天使のテーゼ", "ガンダム", "パンダ", "한국어", "موسيقى", "🎸"])
    def test_other_scripts_stay(self, text: str) -> None:
        assert fold_for_search(text) == text

    def test_kana_voicing_is_not_an_accent(self) -> None:
        assert fold_for_search("ガ") != fold_for_search("カ")
        assert fold_for_search("パ") != fold_for_search("ハ")

    @given(st.text())
    def test_idempotent(self, raw: str) -> None:
        folded = fold_for_search(raw)
        assert fold_for_search(folded) == folded
        assert folded == folded.strip()
        assert "  " not in folded


class TestSplitArtistTitle:
    @pytest.mark.parametrize(
        ("query", "expected"),
        [
            ("Metallica - Enter Sandman", ("Metallica", "Enter Sandman")),
            ("Metallica – Enter Sandman", ("Metallica", "Enter Sandman")),
            ("Metallica — Enter Sandman", ("Metallica", "Enter Sandman")),
            ("  Metallica   -   Enter  Sandman ", ("Metallica", "Enter Sandman")),
            ("Jay-Z - 99 Problems", ("Jay-Z", "99 Problems")),
            ("AC/DC - Back in Black - Live", ("AC/DC", "Back in Black - Live")),
            ("Enter Sandman", (None, "Enter Sandman")),
            ("Jay-Z", (None, "Jay-Z")),
            ("a-ha", (None, "a-ha")),
            ("Кино - Группа крови", ("Кино", "Группа крови")),
            ("- Enter Sandman", (None, "- Enter Sandman")),
            ("Metallica -", (None, "Metallica -")),
            ("", (None, "")),
        ],
    )
    def test_split(self, query: str, expected: tuple[str | None, str]) -> None:
        assert split_artist_title(query) == expected
