"""A synthetic AcousticBrainz high-level dump with planted structure and planted mess.

The documents have exactly the shape and serialisation of the 2022 dump (see
``shared/spec/acousticbrainz-highlevel.md``): 18 classifier entries with ``all``/``value``/
``probability``/``version``, ``metadata.audio_properties``, ``metadata.tags`` (lists of strings,
``file_name`` a plain string) and the nested ``metadata.version``; compact sorted JSON, ASCII-escaped,
``/`` written as ``\\/``, no trailing newline. Member paths are
``highlevel/<mbid[0:2]>/<mbid[2]>/<mbid>-<n>.json``.

Planted structure, so that recommendation quality can be measured against ``ground_truth.ndjson``:

- ``STYLES`` (``data/corpus_styles.txt``): latent styles, each a centre in every classifier's logit
  space plus a decade distribution. A track's logits are style centre + artist offset + track noise,
  turned into probabilities by a softmax per classifier. The genre models agree with the style most of
  the time, but noise flips the winner now and then, as with the real models; moods, rhythm and timbre
  only hint at it. Tuned so that the style is recoverable but not trivially: on the CLR feature vector,
  precision@10 of the style is about 0.8 (about 0.75 when the query's own artist is excluded).
- Artists belong to one style (about 4% to two; then each album has one of them) and have 1–30 tracks
  (heavy-tailed), grouped in albums that share a year. Artist names are unique within a corpus; about
  3% carry accents and about 2% are Japanese or Cyrillic, and titles likewise.

Planted mess, at rates roughly like the real dumps; the exact counts go in `CorpusSummary`, counted
per *document* (file):

- about 30% of recordings have 2–4 submissions (n = 0, 1, …; n = 0 always exists). Later submissions
  are other files (codec, tag layout) with slightly perturbed probabilities, and sometimes differ in
  metadata: album dropped, another date form, a title with odd spacing, other case or NFD accents;
- ``date`` in many forms (``dates_by_form``), about 1% impossible, about 3% missing, a few empty;
  ``originaldate`` sometimes present, and for reissues it holds the true year while ``date`` does not;
- about 2% of documents without title, 2% without artist, 1.5% with a placeholder title, and 1% each
  with leading, trailing or doubled spaces in the title or the artist.

Generation runs in chunks of 1,000 tracks (whole artists, but for the last one of a chunk), so memory
does not grow with the corpus. Each chunk draws everything from its own NumPy generator, seeded with
``(seed, chunk index)``: the same ``(tracks, seed)`` gives byte-identical output, and chunks can be
made in parallel processes (`write_corpus_archive` and `generate_corpus` do so for large corpora)
without changing a byte. Within a chunk the files come in random order, and the later submissions of
a chunk's recordings are emitted with the next chunk: the dump is ordered by submission time, so the
offsets of one MBID are not adjacent either.

Speed (about 10,000 documents/s on two cores): the probabilities are formatted in NumPy, the
documents assembled from pre-serialised pieces, the tags serialised with orjson and the tar headers
written here; see `_format_probabilities`, `_highlevel_layout`, `_dump_tags` and `_tar_header`.
"""

from __future__ import annotations

import itertools
import json
import math
import multiprocessing
import os
import re
import tarfile
import unicodedata
from collections import deque
from collections.abc import Callable, Generator, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt
import orjson
import zstandard

from musicrec_common.features import FEATURE_LAYOUT

__all__ = [
    "ARCHIVE_GROUND_TRUTH_SUFFIX",
    "ARCHIVE_ROOT",
    "CORPUS_FORMAT_VERSION",
    "EMPTY_DATE_FORM",
    "GROUND_TRUTH_FILE",
    "MODEL_LABELS",
    "PLACEHOLDER_TITLES",
    "STYLES",
    "SUMMARY_FILE",
    "CorpusSummary",
    "Style",
    "TruthRecord",
    "generate_corpus",
    "iter_corpus",
    "member_path",
    "read_ground_truth",
    "write_corpus_archive",
]

CORPUS_FORMAT_VERSION = 1
GROUND_TRUTH_FILE = "ground_truth.ndjson"
SUMMARY_FILE = "corpus.json"

# --------------------------------------------------------------------------------------------------
# The dump's constant parts

#: Every model of the 2016+ format and its labels, both in sorted (= serialised) order.
# The label sets of spec §4.1 have one home, the feature layout; the generator writes exactly those.
MODEL_LABELS: Mapping[str, tuple[str, ...]] = {block.model: block.labels for block in FEATURE_LAYOUT}

_MODELS: tuple[str, ...] = tuple(sorted(MODEL_LABELS))


def _model_slices() -> tuple[tuple[int, int], ...]:
    slices = []
    start = 0
    for model in _MODELS:
        slices.append((start, start + len(MODEL_LABELS[model])))
        start += len(MODEL_LABELS[model])
    return tuple(slices)


_SLICES = _model_slices()
_DIM = _SLICES[-1][1]
_FLAT_LABELS: tuple[str, ...] = tuple(label for model in _MODELS for label in MODEL_LABELS[model])
_COLUMN: Mapping[tuple[str, str], int] = {
    (model, label): start + j
    for model, (start, _) in zip(_MODELS, _SLICES, strict=True)
    for j, label in enumerate(MODEL_LABELS[model])
}

_HL_VERSION = {
    "essentia": "2.1-beta1",
    "essentia_build_sha": "8e24b98b71ad84f3024c7541412f02124a26d327",
    "essentia_git_sha": "v2.1_beta1-228-g260734a",
    "extractor": "music 1.0",
    "gaia": "2.4-dev",
    "gaia_git_sha": "857329b",
    "models_essentia_git_sha": "v2.1_beta1",
}
# Client-side extractor builds seen in real documents (the third build sha is made up), with weights.
_LL_VERSIONS: tuple[tuple[Mapping[str, str], float], ...] = (
    (
        {
            "essentia": "2.1-beta1",
            "essentia_build_sha": "88e390dad3da3739867137981c593af8412fc3e5",
            "essentia_git_sha": "v2.1_beta1-34-gf95df8b",
            "extractor": "music 1.0",
        },
        0.5,
    ),
    (
        {
            "essentia": "2.1-beta1",
            "essentia_build_sha": "e0bea5bc2f4b5ceab99b9e1f53b0a14d4090e4fb",
            "essentia_git_sha": "v2.1_beta1-217-g9cf4dbf-dirty",
            "extractor": "music 1.0",
        },
        0.3,
    ),
    (
        {
            "essentia": "2.1-beta1",
            "essentia_build_sha": "2f0e7dbc1ac52ab7f5b0bdb52e4a3c8c3c3e6a01",
            "essentia_git_sha": "v2.1_beta1-7-ge0e83e8-dirty",
            "extractor": "music 1.0",
        },
        0.2,
    ),
)
_METADATA_VERSIONS = tuple({"highlevel": _HL_VERSION, "lowlevel": ll} for ll, _ in _LL_VERSIONS)
_METADATA_VERSION_CUM = tuple(np.cumsum([w for _, w in _LL_VERSIONS]).tolist())


def _highlevel_template() -> str:
    """The document up to the metadata object, as one %-format string of pre-formatted numbers.

    Probabilities are written with 12 significant digits like the extractor's output ("%.12g"). For a
    value strictly between 0 and 1 that string is exactly Python's repr of the float it denotes, which
    is what ``json.dumps`` writes, so the bytes equal ``json.dumps`` of the parsed document (a test
    checks it). Building this part by hand is several times faster than ``json.dumps`` of 18 entries.
    """
    version = json.dumps(_HL_VERSION, separators=(",", ":"), sort_keys=True).replace("%", "%%")
    parts = []
    for model in _MODELS:
        all_part = ",".join(f'"{label}":%s' for label in MODEL_LABELS[model])
        parts.append(f'"{model}":{{"all":{{{all_part}}},"probability":%s,"value":%s,"version":{version}}}')
    return '{"highlevel":{' + ",".join(parts) + '},"metadata":'


def _highlevel_layout() -> tuple[npt.NDArray[np.object_], npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """The template split for `_Generator._highlevel`: the constant pieces (as bytes) between its
    slots, and per model the slots of the winner's probability and of its label. Slot ``s`` is
    column ``2 * s + 1`` of a document's row of pieces; the constants fill the even columns."""
    pieces = [piece.replace("%%", "%").encode("ascii") for piece in _highlevel_template().split("%s")]
    constants = np.empty(len(pieces), dtype=object)
    constants[:] = pieces
    # Per model: one slot per label (the flat columns in order), then "probability", then "value".
    winner_slots = np.array([end + 2 * k for k, (_, end) in enumerate(_SLICES)], dtype=np.intp)
    probability_slots = np.array(
        [start + 2 * k + j for k, (start, end) in enumerate(_SLICES) for j in range(end - start)],
        dtype=np.intp,
    )
    return constants, probability_slots, winner_slots


_HL_CONSTANTS, _HL_PROBABILITY_SLOTS, _HL_WINNER_SLOTS = _highlevel_layout()
_QUOTED_LABELS = np.array([json.dumps(label).encode("ascii") for label in _FLAT_LABELS], dtype=object)
_METADATA_VERSION_JSON = tuple(
    json.dumps(version, separators=(",", ":"), sort_keys=True).replace("/", "\\/").encode("ascii")
    for version in _METADATA_VERSIONS
)
# The audio properties, keys in sorted order; the floats go in as their repr, as json.dumps writes them.
_AUDIO_TEMPLATE = (
    b'{"analysis_sample_rate":44100,"bit_rate":%d,"codec":"%s","downmix":"mix","equal_loudness":0,'
    b'"length":%s,"lossless":%d,"md5_encoded":"%s","replay_gain":%s,"sample_rate":%d}'
)
_SORTED = orjson.OPT_SORT_KEYS


def _dump_json(value: object) -> str:
    """The dump's serialisation (ujson defaults: ASCII-escaped, sorted, compact, ``\\/``)."""
    return json.dumps(value, ensure_ascii=True, separators=(",", ":"), sort_keys=True).replace("/", "\\/")


# What json.dumps(ensure_ascii=True) escapes as \\uXXXX but orjson writes as is (orjson already escapes
# the control characters, as json does).
_UNESCAPED = re.compile("[^\x20-\x7e]")


def _escape_char(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 | code >> 10:04x}\\u{0xDC00 | code & 0x3FF:04x}"


def _dump_tags(tags: dict[str, object]) -> bytes:
    """``_dump_json(tags)`` as bytes, with orjson (several times faster than json), whose output
    differs only in not escaping non-ASCII characters (and DEL): those are escaped here."""
    data = orjson.dumps(tags, option=_SORTED)
    if not data.isascii():
        data = _UNESCAPED.sub(_escape_char, data.decode("utf-8")).encode("ascii")
    return data.replace(b"/", b"\\/")


# Exact powers of ten as floats (10**22 is the largest one a double holds exactly).
_POW10 = np.array([float(10**k) for k in range(23)])
_DIGIT_COLUMNS = np.arange(12)
_PROBABILITY_WIDTH = 18  # the longest "%.12g" of a float in (0, 1): "4.94065645841e-324"


def _format_probabilities(values: npt.NDArray[np.float64]) -> npt.NDArray[np.bytes_]:
    """``b"%.12g" % p`` for every value (all in (0, 1)), vectorised: a flat NUL-padded bytes array.

    Python's float formatting costs about a microsecond a number, and a document has 71 of them. Here
    ``p * 10**k`` (k chosen to give 12 integer digits) is one correctly rounded multiplication, off the
    exact product by at most 2**-14; rounding it to an integer therefore gives the correctly rounded
    12 digits unless the fraction is within that of one half. Those rare values (about 0.2%), and any
    value below 1e-10, are formatted by Python instead, so the output is exactly Python's.
    """
    flat = values.ravel()
    count = flat.size
    inside = (flat >= 1e-10) & (flat < 1.0)
    v = np.where(inside, flat, 0.5)
    exp = np.floor(np.log10(v)).astype(np.intp)
    scaled = v * _POW10[11 - exp]
    # log10 can be off by one next to a power of ten: settle the exponent so that 1e11 <= scaled < 1e12.
    exp += (scaled >= 1e12).astype(np.intp) - (scaled < 1e11).astype(np.intp)
    scaled = v * _POW10[11 - exp]
    exact = inside & (np.abs(scaled - np.floor(scaled) - 0.5) > 1e-3)
    mantissa = np.rint(scaled)
    carry = mantissa >= 1e12
    mantissa[carry] = 1e11
    exp += carry
    exact &= exp < 0  # rounds to 1
    # The 12 digits of the mantissa, most significant first, from its two 6-digit halves as int32
    # (the split is exact: the mantissa is an integer below 2**53, and / 1e6 cannot round past one).
    digits = np.empty((count, 12), dtype=np.uint8)
    high = np.floor(mantissa / 1e6)
    low = (mantissa - high * 1e6).astype(np.int32)
    high = high.astype(np.int32)
    for j in range(5, -1, -1):
        q = high // 10
        digits[:, j] = high - q * 10
        high = q
        q = low // 10
        digits[:, j + 6] = low - q * 10
        low = q
    # "%g" drops trailing zeros: `last` is the last digit kept (the first digit is never 0).
    last = 11 - np.argmax(digits[:, ::-1] != 0, axis=1)
    chars = (digits + np.uint8(ord("0"))) * (last[:, None] >= _DIGIT_COLUMNS)

    out = np.zeros((count, _PROBABILITY_WIDTH), dtype=np.uint8)
    # Fixed notation down to 1e-4: "0.", -exp - 1 zeros, the digits.
    out[:, 0] = ord("0")
    out[:, 1] = ord(".")
    for zeros in range(4):
        rows = np.flatnonzero(exp == -1 - zeros)
        out[rows, 2 : 2 + zeros] = ord("0")
        out[rows, 2 + zeros : 14 + zeros] = chars[rows]
    # Below: "d.ddde-XX" (no "." for a single digit), the exponent two digits (-5 to -10 here).
    rows = np.flatnonzero(exp < -4)
    if rows.size:
        sci = np.zeros((rows.size, _PROBABILITY_WIDTH), dtype=np.uint8)
        sci[:, 0] = chars[rows, 0]
        sci[:, 2:13] = chars[rows, 1:12]
        has_fraction = last[rows] > 0
        sci[:, 1] = np.where(has_fraction, ord("."), 0)
        at = np.where(has_fraction, last[rows] + 2, 1)
        minus_exp = -exp[rows]
        index = np.arange(rows.size)
        sci[index, at] = ord("e")
        sci[index, at + 1] = ord("-")
        sci[index, at + 2] = minus_exp // 10 + ord("0")
        sci[index, at + 3] = minus_exp % 10 + ord("0")
        out[rows] = sci
    formatted = out.view(f"S{_PROBABILITY_WIDTH}").ravel()
    for i in np.flatnonzero(~exact).tolist():
        formatted[i] = b"%.12g" % flat[i]
    return formatted


def member_path(mbid: str, n: int) -> str:
    """``highlevel/<mbid[0:2]>/<mbid[2]>/<mbid>-<n>.json``, as in the dump archives."""
    return f"highlevel/{mbid[0:2]}/{mbid[2]}/{mbid}-{n}.json"


# --------------------------------------------------------------------------------------------------
# Data files


def _data_text(name: str) -> str:
    return resources.files("musicrec_common").joinpath("data").joinpath(name).read_text(encoding="utf-8")


def _sections(text: str) -> dict[str, list[str]]:
    """``[section]`` headers, then one entry per line; blank lines and ``#`` comments are skipped."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
        elif current is None:
            raise ValueError(f"corpus data line outside a section: {line!r}")
        else:
            current.append(line)
    return sections


# --------------------------------------------------------------------------------------------------
# Styles


@dataclass(frozen=True)
class Style:
    """One latent style: logit bonuses per model and label, a decade distribution and a popularity."""

    style_id: int
    name: str
    weight: float
    decades: tuple[tuple[int, float], ...]
    bias: Mapping[str, Mapping[str, float]]
    genre_tags: tuple[str, ...]

    def main_label(self, model: str) -> str:
        """The label this style favours most in `model` (e.g. "roc" for metal in genre_rosamerica)."""
        favoured = self.bias.get(model, {})
        if not favoured:
            raise KeyError(f"style {self.name} has no preference in {model}")
        return max(favoured, key=lambda label: favoured[label])


def _parse_bias(model: str, text: str) -> dict[str, float]:
    if model not in MODEL_LABELS:
        raise ValueError(f"unknown model {model!r} in corpus_styles.txt")
    bonuses = {}
    for item in text.split():
        label, value = item.rsplit(":", 1)
        if label not in MODEL_LABELS[model]:
            raise ValueError(f"unknown label {label!r} of {model} in corpus_styles.txt")
        bonuses[label] = float(value)
    return bonuses


def _load_styles() -> tuple[tuple[Style, ...], dict[str, dict[str, float]]]:
    """The styles in file order (= style_id) and the bonuses shared by all of them (``[*]``)."""
    styles: list[Style] = []
    shared: dict[str, dict[str, float]] = {}
    for name, lines in _sections(_data_text("corpus_styles.txt")).items():
        fields: dict[str, str] = {}
        for line in lines:
            key, _, value = line.partition("=")
            fields[key.strip()] = value.strip()
        bias = {
            key: _parse_bias(key, value)
            for key, value in fields.items()
            if key not in ("weight", "decades", "genre_tags")
        }
        if name == "*":
            shared = bias
            continue
        decades = tuple(
            (int(decade), float(percent) / 100.0)
            for decade, percent in (pair.split(":") for pair in fields["decades"].split())
        )
        genre_tags = tuple(tag.strip() for tag in fields["genre_tags"].split("|"))
        styles.append(Style(len(styles), name, float(fields["weight"]), decades, bias, genre_tags))
    return tuple(styles), shared


STYLES, _SHARED_BIAS = _load_styles()

# Noise in logit units, tuned so that the style is recoverable from the vector but not trivially.
# The genre models get a stronger signal and less noise: they carry the style (and their winner
# should mostly agree with it), while moods, rhythm and timbre only hint at it.
_GENRE_MODELS = frozenset({"genre_dortmund", "genre_electronic", "genre_rosamerica", "genre_tzanetakis"})
_IS_GENRE_COLUMN = np.array([model in _GENRE_MODELS for model in _MODELS for _ in MODEL_LABELS[model]])
_ARTIST_SIGMA = np.where(_IS_GENRE_COLUMN, 0.6, 0.7)
_TRACK_SIGMA = np.where(_IS_GENRE_COLUMN, 1.0, 1.7)
_OTHER_BIAS_SCALE = 0.6
_RESUBMISSION_SIGMA = 0.12
# Softmax inputs are clipped to max - _LOGIT_FLOOR, so every probability lies in (1e-10, 1 - 1e-9)
# and never prints as "0" or "1".
_LOGIT_FLOOR = 20.0


def _style_centres() -> npt.NDArray[np.float64]:
    """Centres in the flat logit space; a small fixed jitter breaks ties between unfavoured labels."""
    centres = np.random.default_rng(20220623).normal(0.0, 0.3, size=(len(STYLES), _DIM))
    for style in STYLES:
        for bias in (style.bias, _SHARED_BIAS):
            for model, labels in bias.items():
                scale = 1.0 if model in _GENRE_MODELS else _OTHER_BIAS_SCALE
                for label, value in labels.items():
                    centres[style.style_id, _COLUMN[model, label]] += value * scale
    return centres


_CENTRES = _style_centres()
_DECADES = tuple(tuple(decade for decade, _ in s.decades) for s in STYLES)
_DECADE_CUM = tuple(tuple(np.cumsum([p for _, p in s.decades]).tolist()) for s in STYLES)
_STYLE_CUM = tuple((np.cumsum([s.weight for s in STYLES]) / sum(s.weight for s in STYLES)).tolist())

# --------------------------------------------------------------------------------------------------
# Vocabulary and names

_VOCAB = _sections(_data_text("corpus_vocab.txt"))
_FIRST_NAMES = tuple(_VOCAB["first_names"])
_BAND_NOUNS = tuple(_VOCAB["band_nouns"])
_ADJECTIVES = tuple(_VOCAB["adjectives"])
_NOUNS = tuple(_VOCAB["nouns"])
_TAILS = tuple(_VOCAB["tails"])
_VERSIONS = tuple(_VOCAB["versions"])
_CLASSICAL_FORMS = tuple(_VOCAB["classical_forms"])
_CLASSICAL_KEYS = tuple(_VOCAB["classical_keys"])
_CLASSICAL_MOVEMENTS = tuple(_VOCAB["classical_movements"])
_ACCENTED_WORDS = tuple(_VOCAB["accented_words"])
_JAPANESE_TITLES = tuple(_VOCAB["japanese_titles"])
_RUSSIAN_TITLES = tuple(_VOCAB["russian_titles"])
_ALBUM_EXTRAS = tuple(_VOCAB["album_extras"])

# Surnames are three consonant-vowel syllables plus an ending chosen by the syllables, so the
# syllable index decodes back from the text: distinct indices give distinct surnames.
_LATIN_SYLLABLES = tuple(c + v for c in "bdfgklmnrs" for v in "aeiou")
_NAME_ENDINGS = ("", "n", "r", "s", "l", "th")
_KANA = "バビブベボダヂヅデドハヒフヘホガギグゲゴカキクケコラリルレロマミムメモナニヌネノタチツテトサシスセソ"
_CYRILLIC_SYLLABLES = tuple(c + v for c in "бдфгклмнрс" for v in "аеиоу")
_ACCENTED_VOWELS = {"a": "á", "e": "é", "i": "í", "o": "ö", "u": "ü"}
_SURNAMES = len(_LATIN_SYLLABLES) ** 3
_NAME_FORMS = len(_FIRST_NAMES) + 2 * len(_BAND_NOUNS)
_NAME_SPACE = _NAME_FORMS * _SURNAMES


def _coprime_stride(space: int, start: int) -> int:
    """The first stride >= start coprime with `space`, so that i -> i * stride mod space permutes."""
    stride = start
    while math.gcd(stride, space) != 1:
        stride += 1
    return stride


_NAME_STRIDE = _coprime_stride(_NAME_SPACE, 7_368_787)

#: Placeholder titles planted in place of a real title ("Track NN" gets the track number).
PLACEHOLDER_TITLES: tuple[str, ...] = (
    "[untitled]",
    "[unknown]",
    "Untitled",
    "Track {n:02d}",
    "Intro",
    "End Credits",
    "Finale",
)

_COUNTRIES = ("US", "GB", "XW", "DE", "JP", "FR", "XE", "CA", "SE", "NL")
_MEDIA = ("CD", "CD", "CD", "Digital Media", "Digital Media", '12" Vinyl')
_RELEASE_TYPES = ("album", "album", "album", "album", "single", "ep", "compilation")
_CODECS = (("mp3", "mp3", 0.60), ("flac", "flac", 0.28), ("vorbis", "ogg", 0.07), ("aac", "m4a", 0.05))
_CODEC_CUM = tuple(np.cumsum([w for _, _, w in _CODECS]).tolist())
_MP3_BITRATES = (128000, 192000, 256000, 320000)
_JUNK_SUFFIXES = (" (remaster)", " (reissue)", " [Deluxe Edition]", "?", " remastered")
_UTC_OFFSETS = ("+02:00", "-05:00", "+01:00", "+09:00", "-08:00")

#: The ``dates_by_form`` key of an empty ``date`` tag.
EMPTY_DATE_FORM = "empty"
# Date forms (the other keys of ``dates_by_form``) with their weights among documents with a date.
_DATE_FORMS: tuple[tuple[str, float], ...] = (
    ("YYYY", 0.34),
    ("YYYY-MM-DD", 0.28),
    ("YYYY-MM", 0.07),
    ("YYYY-MM-DD HH:MM:SS", 0.05),
    ("YYYY-MM-DDTHH:MM:SSZ", 0.04),
    ("YYYY-MM-DDTHH:MM:SS+HH:MM", 0.03),
    ("YYYY/MM/DD", 0.04),
    ("YYYY.MM.DD", 0.03),
    ("YYYYMMDD", 0.04),
    ("YYYY junk", 0.04),
)
_DATE_FORM_CUM = tuple((np.cumsum([w for _, w in _DATE_FORMS]) / sum(w for _, w in _DATE_FORMS)).tolist())

# Per-document rates of planted mess.
_P_MISSING_DATE = 0.03
_P_IMPOSSIBLE_DATE = 0.01
_P_EMPTY_DATE = 0.004
_P_MISSING_TITLE = 0.02
_P_PLACEHOLDER = 0.015
_P_PADDED = 0.01
_P_MISSING_ARTIST = 0.02
_P_MINIMAL_TAGS = 0.15
# Per later submission: draw title/artist mess anew, drop the album, draw the date anew, vary the title.
_P_REDRAW_NAMES = 0.5
_P_DROP_ALBUM = 0.15
_P_REDRAW_DATE = 0.3
_P_TITLE_VARIANT = 0.12
# Per recording.
_P_MULTI_SUBMISSION = 0.30
_P_TWO_STYLES = 0.04

_CHUNK_TRACKS = 1000
# Every RNG of a corpus is seeded with [seed, _RNG_DOMAIN] (and a chunk's with its index after that).
_RNG_DOMAIN = 0x6D75736963726563
# Worker processes pay off from about this size (each takes a second or so to start); at most this many.
_POOL_MIN_TRACKS = 20 * _CHUNK_TRACKS
_POOL_MAX_WORKERS = 4
_BASE_DRAWS = 10
_DOC_DRAWS = 28
_MAX_ARTIST_TRACKS = 30
_ARTIST_SIZE_P = np.arange(1, _MAX_ARTIST_TRACKS + 1, dtype=np.float64) ** -1.35
_ARTIST_SIZE_CUM = tuple((np.cumsum(_ARTIST_SIZE_P) / _ARTIST_SIZE_P.sum()).tolist())
_MAX_YEAR = 2021

# --------------------------------------------------------------------------------------------------
# Public records


@dataclass(frozen=True)
class TruthRecord:
    """The clean, canonical values of one recording, before any mess was planted.

    ``year`` is the original release year (``originaldate``), also for reissues whose ``date`` tag
    holds a later year.
    """

    mbid: str
    style: str
    style_id: int
    artist: str
    title: str
    album: str
    year: int | None


@dataclass(frozen=True)
class CorpusSummary:
    """What a generated corpus holds. Mess counts are per document (file), so they can be re-counted.

    - ``tracks``: distinct recordings; ``documents``: files; ``duplicate_submissions``: documents with
      n >= 1 (``documents - tracks``);
    - ``styles``: distinct styles that occur; ``artists``: distinct artists;
    - ``missing_title`` / ``missing_artist``: documents without a ``title`` / ``artist`` tag;
    - ``placeholder_titles``: documents whose title is one of ``PLACEHOLDER_TITLES``;
    - ``dates_by_form``: the shape of each ``date`` tag present (``EMPTY_DATE_FORM`` for ""), so that
      ``sum(dates_by_form.values()) + missing_dates == documents``;
    - ``impossible_dates``: ``date`` values of a valid shape but an impossible date ("0000", "3000",
      "2001-13-01", "1999-02-30"); they are also counted under their shape.
    """

    tracks: int
    documents: int
    duplicate_submissions: int
    styles: int
    artists: int
    missing_title: int
    missing_artist: int
    placeholder_titles: int
    dates_by_form: dict[str, int]
    impossible_dates: int
    missing_dates: int


# --------------------------------------------------------------------------------------------------
# Generation helpers


def _pick(cumulative: tuple[float, ...], u: float) -> int:
    """Index of the uniform draw `u` in a cumulative distribution (robust to a last edge < 1)."""
    for i, edge in enumerate(cumulative):
        if u < edge:
            return i
    return len(cumulative) - 1


# Where the 32 hex digits go in 8-4-4-4-12 form.
_UUID_HEX_COLUMNS = np.array([i for i in range(36) if i not in (8, 13, 18, 23)], dtype=np.intp)


def _mbids(rng: np.random.Generator, count: int) -> list[str]:
    """UUID4-shaped lower-case ids from the seeded generator (version nibble 4, variant 10xx)."""
    raw = rng.integers(0, 256, size=(count, 16), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    hexed = np.frombuffer(raw.tobytes().hex().encode("ascii"), dtype=np.uint8).reshape(count, 32)
    text = np.full((count, 36), ord("-"), dtype=np.uint8)
    text[:, _UUID_HEX_COLUMNS] = hexed
    joined = text.tobytes().decode("ascii")
    return [joined[i : i + 36] for i in range(0, 36 * count, 36)]


def _digits(value: int, base: int, count: int) -> list[int]:
    out = []
    for _ in range(count):
        value, digit = divmod(value, base)
        out.append(digit)
    return out[::-1]


def _surname(index: int, accented: bool) -> str:
    digits = _digits(index, len(_LATIN_SYLLABLES), 3)
    text = "".join(_LATIN_SYLLABLES[d] for d in digits) + _NAME_ENDINGS[sum(digits) % len(_NAME_ENDINGS)]
    if accented:
        # Accent the first vowel and every n. The change is reversible, so names stay unique.
        for i, ch in enumerate(text):
            if ch in _ACCENTED_VOWELS:
                text = text[:i] + _ACCENTED_VOWELS[ch] + text[i + 1 :]
                break
        text = text.replace("n", "ñ")
    return text[0].upper() + text[1:]


def _artist_name(name_index: int, script: str) -> tuple[str, str]:
    """(name, sort name) for a name index in [0, _NAME_SPACE); distinct indices give distinct names."""
    if script == "ja":
        digits = _digits(name_index, len(_KANA), 5)
        family, given = "".join(_KANA[d] for d in digits[:2]), "".join(_KANA[d] for d in digits[2:])
        return f"{family} {given}", f"{family} {given}"
    if script == "ru":
        digits = _digits(name_index, len(_CYRILLIC_SYLLABLES), 5)
        family = "".join(_CYRILLIC_SYLLABLES[d] for d in digits[:2]).capitalize()
        given = "".join(_CYRILLIC_SYLLABLES[d] for d in digits[2:]).capitalize()
        return f"{given} {family}", f"{family}, {given}"
    form, surname_index = divmod(name_index, _SURNAMES)
    surname = _surname(surname_index, script == "accent")
    if form < len(_FIRST_NAMES):
        first = _FIRST_NAMES[form]
        return f"{first} {surname}", f"{surname}, {first}"
    band = form - len(_FIRST_NAMES)
    noun = _BAND_NOUNS[band % len(_BAND_NOUNS)]
    if band < len(_BAND_NOUNS):
        return f"The {surname} {noun}", f"{surname} {noun}, The"
    return f"{surname} & the {noun}", f"{surname} & the {noun}"


def _title(u: list[float], script: str, classical: bool) -> str:
    """A title from the vocabulary; `u` holds 6 uniform draws."""
    # With the titles of Japanese- and Cyrillic-named artists, about 2.5% of titles are non-Latin and
    # about 3% carry accents.
    if script == "ja" or (script != "ru" and u[0] < 0.004):
        return _JAPANESE_TITLES[int(u[1] * len(_JAPANESE_TITLES))]
    if script == "ru" or u[0] < 0.008:
        return _RUSSIAN_TITLES[int(u[1] * len(_RUSSIAN_TITLES))]
    adj = _ADJECTIVES[int(u[2] * len(_ADJECTIVES))]
    noun = _NOUNS[int(u[3] * len(_NOUNS))]
    noun2 = _NOUNS[int(u[4] * len(_NOUNS))]
    if u[0] < 0.03 or (script == "accent" and u[0] < 0.3):
        word = _ACCENTED_WORDS[int(u[1] * len(_ACCENTED_WORDS))]
        return (word, f"{adj} {word}", f"{word} {_TAILS[int(u[4] * len(_TAILS))]}")[int(u[5] * 3)]
    if classical and u[1] < 0.7:
        form = _CLASSICAL_FORMS[int(u[2] * len(_CLASSICAL_FORMS))]
        key = _CLASSICAL_KEYS[int(u[3] * len(_CLASSICAL_KEYS))]
        movement = _CLASSICAL_MOVEMENTS[int(u[4] * len(_CLASSICAL_MOVEMENTS))]
        return f"{form} No. {1 + int(u[5] * 9)} in {key}: {movement}"
    v = u[5]
    if v < 0.25:
        return f"{adj} {noun}"
    if v < 0.42:
        return noun
    if v < 0.55:
        return f"{noun} of the {noun2}" if u[1] < 0.5 else f"{noun} of {noun2}"
    if v < 0.65:
        return f"The {adj} {noun}"
    if v < 0.77:
        return f"{noun} {_TAILS[int(u[1] * len(_TAILS))]}"
    if v < 0.87:
        return f"{adj} {noun} {noun2}"
    if v < 0.97:
        return f"{adj} {noun} {_VERSIONS[int(u[1] * len(_VERSIONS))]}"
    return f"{noun} / {noun2}"


def _date_value(form: str, year: int, month: int, day: int, u: list[float]) -> str:
    hh, mm, ss = int(u[0] * 24), int(u[1] * 60), int(u[2] * 60)
    if form == "YYYY":
        return f"{year}"
    if form == "YYYY-MM-DD":
        return f"{year}-{month:02d}-{day:02d}"
    if form == "YYYY-MM":
        return f"{year}-{month:02d}"
    if form == "YYYY-MM-DD HH:MM:SS":
        return f"{year}-{month:02d}-{day:02d} {hh:02d}:{mm:02d}:{ss:02d}"
    if form == "YYYY-MM-DDTHH:MM:SSZ":
        return f"{year}-{month:02d}-{day:02d}T{hh:02d}:{mm:02d}:{ss:02d}Z"
    if form == "YYYY-MM-DDTHH:MM:SS+HH:MM":
        offset = _UTC_OFFSETS[int(u[3] * len(_UTC_OFFSETS))]
        return f"{year}-{month:02d}-{day:02d}T{hh:02d}:{mm:02d}:{ss:02d}{offset}"
    if form == "YYYY/MM/DD":
        return f"{year}/{month:02d}/{day:02d}"
    if form == "YYYY.MM.DD":
        return f"{year}.{month:02d}.{day:02d}"
    if form == "YYYYMMDD":
        return f"{year}{month:02d}{day:02d}"
    return f"{year}{_JUNK_SUFFIXES[int(u[3] * len(_JUNK_SUFFIXES))]}"


@dataclass
class _Artist:
    name: str
    sort_name: str
    script: str
    mbid: str
    styles: tuple[int, ...]
    first_year: int
    offset: npt.NDArray[np.float64]
    tags: dict[str, list[str]]


@dataclass
class _Album:
    title: str
    year: int
    month: int
    day: int
    reissue_year: int | None
    style_id: int
    mbid: str
    genre: str | None
    track_total: int
    tags_by_layout: dict[str, dict[str, list[str]]] = field(default_factory=dict)


@dataclass
class _Recording:
    artist: _Artist
    album: _Album
    track_number: int
    title: str
    mbid: str
    submissions: int


@dataclass
class _Tally:
    documents: int = 0
    missing_title: int = 0
    missing_artist: int = 0
    placeholder_titles: int = 0
    impossible_dates: int = 0
    missing_dates: int = 0
    dates_by_form: dict[str, int] = field(default_factory=dict)

    def add(self, other: _Tally) -> None:
        self.documents += other.documents
        self.missing_title += other.missing_title
        self.missing_artist += other.missing_artist
        self.placeholder_titles += other.placeholder_titles
        self.impossible_dates += other.impossible_dates
        self.missing_dates += other.missing_dates
        for form, count in other.dates_by_form.items():
            self.dates_by_form[form] = self.dates_by_form.get(form, 0) + count


@dataclass
class _Part:
    """What one chunk's generator makes. Documents come with a random sort key: a chunk's first
    submissions are emitted with the previous chunk's later ones, in the order of their keys."""

    first: list[tuple[float, str, bytes]]  # (key, member path, document), n = 0
    later: list[tuple[float, str, bytes]]  # n >= 1
    truth_lines: list[str]  # ground_truth.ndjson lines of the chunk's recordings (`TruthRecord` fields)
    tally: _Tally
    styles_seen: set[int]
    artists: int


@dataclass
class _Chunk:
    members: list[tuple[str, bytes]]
    truth_lines: list[str]
    done_tracks: int


# --------------------------------------------------------------------------------------------------
# The generator


class _Generator:
    """One chunk of a corpus: `count` recordings (chunk `index`) from their own seeded RNG, consumed
    in a fixed order. Chunks depend on nothing but (seed, index, count), so they can be made in any
    process and in parallel without changing a byte."""

    def __init__(self, seed: int, index: int, count: int) -> None:
        self.count = count
        self.rng = np.random.default_rng([seed, _RNG_DOMAIN, index])
        self.name_offset = _name_offset(seed)
        # Artist ordinals (they make the names unique) are the chunk's block of _CHUNK_TRACKS: a chunk
        # never has more artists than recordings. Unique up to _NAME_SPACE (24 million) tracks.
        self.first_artist = index * _CHUNK_TRACKS
        self.artists = 0
        self.styles_seen: set[int] = set()
        self.tally = _Tally()
        self._mbid_pool: list[str] = []
        self._mbid_next = 0

    def _take_mbids(self, count: int) -> list[str]:
        """Ids from a pool refilled in blocks: one NumPy call per block, not per album."""
        if self._mbid_next + count > len(self._mbid_pool):
            self._mbid_pool = self._mbid_pool[self._mbid_next :] + _mbids(self.rng, 4096)
            self._mbid_next = 0
        out = self._mbid_pool[self._mbid_next : self._mbid_next + count]
        self._mbid_next += count
        return out

    # -- structure ---------------------------------------------------------------------------------

    def _new_artist(self) -> tuple[_Artist, int]:
        """A new artist and the number of tracks it should get."""
        u = self.rng.random(8).tolist()
        size = 1 + _pick(_ARTIST_SIZE_CUM, u[0])
        style = _pick(_STYLE_CUM, u[1])
        styles: tuple[int, ...] = (style,)
        if u[2] < _P_TWO_STYLES:
            styles = (style, (style + 1 + int(u[3] * (len(STYLES) - 1))) % len(STYLES))
        script = "latin"
        if u[4] < 0.03:
            script = "accent"
        elif u[4] < 0.05:
            script = "ja" if u[5] < 0.5 else "ru"
        ordinal = self.first_artist + self.artists
        name, sort_name = _artist_name((ordinal * _NAME_STRIDE + self.name_offset) % _NAME_SPACE, script)
        self.artists += 1
        first_year = _DECADES[style][_pick(_DECADE_CUM[style], u[6])] + int(u[7] * 10)
        offset = self.rng.normal(0.0, 1.0, size=_DIM) * _ARTIST_SIGMA
        (mbid,) = self._take_mbids(1)
        tags = {
            "artist": [name],
            "artists": [name],
            "artistsort": [sort_name],
            "musicbrainz_artistid": [mbid],
        }
        return _Artist(name, sort_name, script, mbid, styles, first_year, offset, tags), size

    def _new_album(self, artist: _Artist, size: int) -> _Album:
        u = self.rng.random(17).tolist()
        style_id = artist.styles[0] if len(artist.styles) == 1 or u[0] < 0.5 else artist.styles[1]
        year = min(_MAX_YEAR, artist.first_year + int(u[1] * 6))
        reissue = None
        if u[2] < 0.06 and year < _MAX_YEAR - 5:
            reissue = min(_MAX_YEAR, year + 5 + int(u[3] * 20))
        if u[4] < 0.04:
            title = artist.name  # self-titled
        elif u[4] < 0.07:
            title = _ALBUM_EXTRAS[int(u[5] * len(_ALBUM_EXTRAS))]
        else:
            title = _title(u[5:11], artist.script, classical=False)
        mbid, group_id = self._take_mbids(2)
        total = size + (int(u[11] * 4) if u[12] < 0.5 else 0)
        genres = STYLES[style_id].genre_tags
        genre = genres[int(u[13] * len(genres))] if u[14] < 0.35 else None
        month, day = 1 + int(u[15] * 12), 1 + int(u[16] * 28)
        album = _Album(title, year, month, day, reissue, style_id, mbid, genre, total)
        country = _COUNTRIES[int(u[6] * len(_COUNTRIES))]
        release_type = _RELEASE_TYPES[int(u[7] * len(_RELEASE_TYPES))] if size > 2 else "single"
        common = {
            "album": [title],
            "albumartist": [artist.name],
            "albumartistsort": [artist.sort_name],
            "label": [f"{_surname(int(u[8] * _SURNAMES), accented=False)} Records"],
            "media": [_MEDIA[int(u[9] * len(_MEDIA))]],
            "musicbrainz_albumartistid": [artist.mbid],
            "musicbrainz_albumid": [mbid],
            "musicbrainz_releasegroupid": [group_id],
            "script": [{"ja": "Jpan", "ru": "Cyrl"}.get(artist.script, "Latn")],
        }
        # Tag layouts: Vorbis comments (flac, ogg), ID3 as written by Picard (mp3, m4a: the
        # space-containing TXXX names, "n/total" numbers), and a hand-tagged file with few tags.
        album.tags_by_layout["vorbis"] = {
            **common,
            "discnumber": ["1"],
            "disctotal": ["1"],
            "releasecountry": [country],
            "releasestatus": ["official"],
            "releasetype": [release_type],
            "totaldiscs": ["1"],
            "totaltracks": [str(total)],
            "tracktotal": [str(total)],
        }
        album.tags_by_layout["id3"] = {
            **common,
            "discnumber": ["1/1"],
            "musicbrainz album release country": [country],
            "musicbrainz album status": ["official"],
            "musicbrainz album type": [release_type],
        }
        album.tags_by_layout["minimal"] = {"album": [title]}
        return album

    def _recordings(self, target: int, remaining: int) -> list[_Recording]:
        """Whole artists until `target` recordings (never more than `remaining`)."""
        recs: list[_Recording] = []
        while len(recs) < target:
            artist, size = self._new_artist()
            left = min(size, remaining - len(recs))
            while left > 0:
                u = self.rng.random(2).tolist()
                album_size = min(left, 1 + int(u[0] * 2) if u[1] < 0.25 else 4 + int(u[0] * 9))
                album = self._new_album(artist, album_size)
                self.styles_seen.add(album.style_id)
                classical = STYLES[album.style_id].name == "classical"
                mbids = self._take_mbids(album_size)
                for i, d in enumerate(self.rng.random((album_size, 8)).tolist()):
                    submissions = 1
                    if d[6] < _P_MULTI_SUBMISSION:
                        submissions = 2 if d[7] < 0.7 else (3 if d[7] < 0.9 else 4)
                    title = _title(d[:6], artist.script, classical)
                    recs.append(_Recording(artist, album, i + 1, title, mbids[i], submissions))
                left -= album_size
        return recs

    # -- documents ---------------------------------------------------------------------------------

    def _highlevel(
        self, recs: list[_Recording], doc_rec: list[int], doc_n: list[int]
    ) -> npt.NDArray[np.object_]:
        """A row per document: the pieces (bytes) of its serialisation up to the metadata object
        (`_HL_CONSTANTS` interleaved with the formatted probabilities, the winners' probabilities and
        labels). An array rather than lists: the garbage collector does not scan arrays, and scanning
        a chunk's worth of 215-item lists over and over cost about a fifth of the run time."""
        styles = np.array([r.album.style_id for r in recs], dtype=np.intp)
        offsets = np.stack([r.artist.offset for r in recs])
        noise = self.rng.normal(0.0, 1.0, size=(len(recs), _DIM)) * _TRACK_SIGMA
        logits = (_CENTRES[styles] + offsets + noise)[np.array(doc_rec, dtype=np.intp)]
        later = np.array(doc_n, dtype=np.intp) > 0
        logits[later] += self.rng.normal(0.0, _RESUBMISSION_SIGMA, size=(int(later.sum()), _DIM))
        probs = np.empty_like(logits)
        winners = np.empty((len(doc_rec), len(_MODELS)), dtype=np.intp)
        for k, (start, end) in enumerate(_SLICES):
            block = logits[:, start:end]
            block = np.maximum(block - block.max(axis=1, keepdims=True), -_LOGIT_FLOOR)
            e = np.exp(block)
            p = e / e.sum(axis=1, keepdims=True)
            probs[:, start:end] = p
            winners[:, k] = start + p.argmax(axis=1)
        formatted = _format_probabilities(probs).astype(object).reshape(probs.shape)
        pieces = np.empty((len(doc_rec), 2 * len(_HL_CONSTANTS) - 1), dtype=object)
        pieces[:, 0::2] = _HL_CONSTANTS
        pieces[:, 2 * _HL_PROBABILITY_SLOTS + 1] = formatted
        pieces[:, 2 * _HL_WINNER_SLOTS + 1] = np.take_along_axis(formatted, winners, axis=1)
        pieces[:, 2 * _HL_WINNER_SLOTS + 3] = _QUOTED_LABELS[winners]
        return pieces

    def _date_tag(self, album: _Album, form_u: float, u: list[float]) -> str | None:
        """The ``date`` tag of one document (None: absent), counted in the tally. `u`: 5 draws."""
        tally = self.tally
        if u[0] < _P_MISSING_DATE:
            tally.missing_dates += 1
            return None
        year = album.reissue_year or album.year
        if u[0] < _P_MISSING_DATE + _P_IMPOSSIBLE_DATE:
            choice = int(u[1] * 4)
            value = ("0000", "3000", f"{year}-13-01", f"{year}-02-30")[choice]
            form = "YYYY" if choice < 2 else "YYYY-MM-DD"
            tally.impossible_dates += 1
        elif u[0] < _P_MISSING_DATE + _P_IMPOSSIBLE_DATE + _P_EMPTY_DATE:
            value, form = "", EMPTY_DATE_FORM
        else:
            form = _DATE_FORMS[_pick(_DATE_FORM_CUM, form_u)][0]
            value = _date_value(form, year, album.month, album.day, u[1:])
        tally.dates_by_form[form] = tally.dates_by_form.get(form, 0) + 1
        return value

    def _title_tag(self, rec: _Recording, n: int, title_u: float, u: list[float]) -> str | None:
        """The ``title`` tag of one document (None: absent), counted in the tally. `u`: 3 draws."""
        if title_u < _P_MISSING_TITLE:
            self.tally.missing_title += 1
            return None
        if title_u < _P_MISSING_TITLE + _P_PLACEHOLDER:
            self.tally.placeholder_titles += 1
            return PLACEHOLDER_TITLES[int(u[0] * len(PLACEHOLDER_TITLES))].format(n=rec.track_number)
        title = rec.title
        if title_u < _P_MISSING_TITLE + _P_PLACEHOLDER + _P_PADDED:
            title = ("  " + title, title + " ", title.replace(" ", "  ", 1) + " ")[int(u[0] * 3)]
        if n and u[1] < _P_TITLE_VARIANT:
            variant = int(u[2] * 4)
            if variant == 0:
                title = " " + title + "  "
            elif variant == 1:
                title = title.lower()
            elif variant == 2:
                title = title.upper()
            elif not title.isascii():
                title = unicodedata.normalize("NFD", title)
            else:
                title = title.lower()
        return title

    def _document(
        self,
        rec: _Recording,
        n: int,
        highlevel: npt.NDArray[np.object_],
        u: list[float],
        base: list[float],
        md5: str,
    ) -> bytes:
        """One serialised document. `highlevel`: its row of `_highlevel`; `u`: _DOC_DRAWS uniform
        draws of this document; `base`: the _BASE_DRAWS of its recording (length, replay gain, then
        title, artist, date and form draws)."""
        album, artist = rec.album, rec.artist
        # Each submission is its own file: codec, bit rate, checksum and tag layout are drawn per document.
        codec, ext, _ = _CODECS[_pick(_CODEC_CUM, u[0])]
        if codec == "flac":
            bit_rate = 0
        elif codec == "mp3":
            bit_rate = _MP3_BITRATES[int(u[1] * 4)] if u[2] < 0.6 else 160000 + int(u[1] * 120000)
        else:
            bit_rate = 128000 + int(u[1] * 128000)
        length = float("%.12g" % (base[0] + (u[3] * 0.05 if n else 0.0)))
        replay_gain = float("%.12g" % (base[1] + u[4] * 0.4))
        sample_rate = 48000 if u[5] < 0.06 else 44100
        lossless = 1 if codec == "flac" else 0
        layout = "vorbis" if codec in ("flac", "vorbis") else "id3"
        if u[6] < _P_MINIMAL_TAGS:
            layout = "minimal"
        tags: dict[str, object] = dict(album.tags_by_layout[layout])

        # Later submissions repeat the first one's title, artist and date choices unless redrawn.
        redraw_names = n > 0 and u[8] < _P_REDRAW_NAMES
        title = self._title_tag(rec, n, u[7] if redraw_names else base[2], u[9:12])
        if title is not None:
            tags["title"] = [title]
        artist_u = u[12] if redraw_names else base[3]
        if artist_u < _P_MISSING_ARTIST:
            self.tally.missing_artist += 1
            tags.pop("albumartist", None)
            tags.pop("albumartistsort", None)
        else:
            if layout != "minimal":
                tags.update(artist.tags)
            name = artist.name
            if artist_u < _P_MISSING_ARTIST + _P_PADDED:
                name = (name + " ", " " + name, name.replace(" ", "  ", 1))[int(u[13] * 3)]
            tags["artist"] = [name]
        if n and u[14] < _P_DROP_ALBUM:
            del tags["album"]
        if n > 0 and u[27] < _P_REDRAW_DATE:
            date = self._date_tag(album, u[20], u[15:20])
        else:
            date = self._date_tag(album, base[9], base[4:9])
        if date is not None:
            tags["date"] = [date]
        if layout != "minimal" and (album.reissue_year is not None or u[21] < 0.3):
            full_date = f"{album.year}-{album.month:02d}-{album.day:02d}"
            tags["originaldate"] = [full_date if u[22] < 0.6 else str(album.year)]
        if album.genre is not None and u[23] < 0.8:
            tags["genre"] = [album.genre]

        number = rec.track_number
        release_track_id = album.mbid[:9] + rec.mbid[9:]
        if layout == "id3":
            tags["tracknumber"] = [f"{number}/{album.track_total}"]
            tags["musicbrainz release track id"] = [release_track_id]
        elif layout == "vorbis":
            tags["tracknumber"] = [str(number)]
            tags["musicbrainz_releasetrackid"] = [release_track_id]
        else:
            tags["tracknumber"] = [f"{number:02d}" if u[24] < 0.5 else str(number)]
        tags["musicbrainz_recordingid"] = [rec.mbid]
        safe_title = rec.title.replace("/", "-")
        prefix = f"{number:02d}" if u[25] < 0.5 else f"{artist.name} -"
        tags["file_name"] = f"{prefix} {safe_title}.{ext}"

        audio = _AUDIO_TEMPLATE % (
            bit_rate,
            codec.encode("ascii"),
            repr(length).encode("ascii"),
            lossless,
            md5.encode("ascii"),
            repr(replay_gain).encode("ascii"),
            sample_rate,
        )
        version = _METADATA_VERSION_JSON[_pick(_METADATA_VERSION_CUM, u[26])]
        self.tally.documents += 1
        pieces: list[bytes] = highlevel.tolist()
        pieces += (
            b'{"audio_properties":',
            audio,
            b',"tags":',
            _dump_tags(tags),
            b',"version":',
            version,
            b"}}",
        )
        return b"".join(pieces)

    def make(self) -> _Part:
        recs = self._recordings(self.count, self.count)
        doc_rec = [i for i, rec in enumerate(recs) for _ in range(rec.submissions)]
        doc_n = [n for rec in recs for n in range(rec.submissions)]
        highlevel = self._highlevel(recs, doc_rec, doc_n)
        # Per recording: length, replay gain, and the title/artist/date draws its submissions share.
        base = self.rng.random((len(recs), _BASE_DRAWS))
        base[:, 0] = np.clip(self.rng.lognormal(np.log(235.0), 0.35, size=len(recs)), 30.0, 1800.0)
        base[:, 1] = self.rng.normal(-7.0, 3.0, size=len(recs))
        draws = self.rng.random((len(doc_rec), _DOC_DRAWS))
        md5s = self.rng.bytes(16 * len(doc_rec)).hex()
        keys = self.rng.random(len(doc_rec)).tolist()
        first: list[tuple[float, str, bytes]] = []
        later: list[tuple[float, str, bytes]] = []
        for j, (i, n) in enumerate(zip(doc_rec, doc_n, strict=True)):
            rec = recs[i]
            data = self._document(
                rec,
                n,
                highlevel[j],
                draws[j].tolist(),
                base[i].tolist(),
                md5s[32 * j : 32 * (j + 1)],
            )
            (later if n else first).append((keys[j], member_path(rec.mbid, n), data))
        truth_lines = [_truth_line(r) for r in recs]
        return _Part(first, later, truth_lines, self.tally, self.styles_seen, self.artists)


def _name_offset(seed: int) -> int:
    """Where a corpus's artist names start in the name space."""
    return int(np.random.default_rng([seed, _RNG_DOMAIN]).integers(0, _NAME_SPACE))


def _make_part(seed: int, index: int, count: int) -> _Part:
    return _Generator(seed, index, count).make()


class _Pool:
    """Worker processes that make chunks. The output cannot depend on their number: a chunk is a
    function of (seed, index, count) alone, and the parts are taken in chunk order."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        # "spawn": a fresh interpreter, safe whatever threads this process runs (numpy's, zstd's).
        self.executor = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)


def _cpu_count() -> int:
    """The CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _pool_for(tracks: int, workers: int | None) -> _Pool | None:
    """`workers` processes, or for None one per CPU (up to _POOL_MAX_WORKERS) from _POOL_MIN_TRACKS
    tracks on (they take about a second to start) if there are several CPUs; None when that makes 0:
    the chunks are then made in this process."""
    if workers is None:
        cpus = _cpu_count()
        workers = min(_POOL_MAX_WORKERS, cpus) if tracks >= _POOL_MIN_TRACKS and cpus > 1 else 0
    if workers < 0:
        raise ValueError("workers must be >= 0")
    return _Pool(workers) if workers else None


@contextmanager
def _closing_pool(pool: _Pool | None) -> Iterator[None]:
    try:
        yield
    finally:
        if pool is not None:
            pool.close()


class _Corpus:
    """A whole corpus: its chunks in order, with later submissions carried into the next chunk, and
    the running counts."""

    def __init__(self, tracks: int, seed: int) -> None:
        if tracks < 0:
            raise ValueError("tracks must be >= 0")
        if seed < 0:
            raise ValueError("seed must be >= 0")
        self.tracks = tracks
        self.seed = seed
        self.artists = 0
        self.styles_seen: set[int] = set()
        self.tally = _Tally()

    def _parts(self, pool: _Pool | None) -> Iterator[tuple[int, _Part]]:
        """(recordings, part) per chunk, in order; with a pool, made a few chunks ahead in its workers
        (at most workers + 1 parts wait, so memory stays bounded)."""
        counts = [min(_CHUNK_TRACKS, self.tracks - start) for start in range(0, self.tracks, _CHUNK_TRACKS)]
        if pool is None:
            for index, count in enumerate(counts):
                yield count, _make_part(self.seed, index, count)
            return
        pending: deque[tuple[int, Future[_Part]]] = deque()
        following = itertools.islice(enumerate(counts), 1, None)
        for index, count in itertools.islice(following, pool.workers + 1):
            pending.append((count, pool.executor.submit(_make_part, self.seed, index, count)))
        if counts:  # the workers take a second to start: meanwhile the first chunk is made here
            yield counts[0], _make_part(self.seed, 0, counts[0])
        while pending:
            count, future = pending.popleft()
            part = future.result()
            for index, next_count in itertools.islice(following, 1):
                pending.append((next_count, pool.executor.submit(_make_part, self.seed, index, next_count)))
            yield count, part

    def chunks(self, pool: _Pool | None = None) -> Generator[_Chunk, None, None]:
        """The corpus chunk by chunk, made in this process or, with a pool, in its workers."""
        done = 0
        carried: list[tuple[float, str, bytes]] = []
        for count, part in self._parts(pool):
            self.tally.add(part.tally)
            self.styles_seen |= part.styles_seen
            self.artists += part.artists
            done += count
            batch = sorted(part.first + carried)
            carried = part.later
            if done >= self.tracks:
                batch += sorted(carried)
            yield _Chunk([(name, data) for _, name, data in batch], part.truth_lines, done)

    def summary(self) -> CorpusSummary:
        t = self.tally
        return CorpusSummary(
            tracks=self.tracks,
            documents=t.documents,
            duplicate_submissions=t.documents - self.tracks,
            styles=len(self.styles_seen),
            artists=self.artists,
            missing_title=t.missing_title,
            missing_artist=t.missing_artist,
            placeholder_titles=t.placeholder_titles,
            dates_by_form=dict(sorted(t.dates_by_form.items())),
            impossible_dates=t.impossible_dates,
            missing_dates=t.missing_dates,
        )


# --------------------------------------------------------------------------------------------------
# Public API


def iter_corpus(tracks: int, *, seed: int = 0) -> Iterator[tuple[str, bytes]]:
    """Every submission of a synthetic corpus as (member path, serialised document), streamed.

    Deterministic for a given (tracks, seed); memory stays bounded (about two chunks of documents).
    """
    for chunk in _Corpus(tracks, seed).chunks():
        yield from chunk.members


_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0)


def generate_corpus(
    out_dir: Path,
    *,
    tracks: int,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
) -> CorpusSummary:
    """Write a corpus under `out_dir`: the members, ``ground_truth.ndjson`` and ``corpus.json``.

    The members are exactly those of ``iter_corpus(tracks, seed=seed)``. Refuses a directory that
    already holds a non-empty ``highlevel`` tree, so that files of another corpus cannot mix in.
    ``progress(done_tracks, total_tracks)`` is called after every chunk of 1,000 tracks.
    `workers`: processes that make the chunks, as for `write_corpus_archive`.
    """
    out_dir = Path(out_dir)
    root = out_dir / "highlevel"
    if root.is_dir() and any(root.iterdir()):
        raise FileExistsError(f"{root} already exists and is not empty")
    out_dir.mkdir(parents=True, exist_ok=True)
    corpus = _Corpus(tracks, seed)
    base = str(out_dir)
    made: set[str] = set()
    pool = _pool_for(tracks, workers)
    with (
        _closing_pool(pool),
        closing(corpus.chunks(pool)) as chunks,
        (out_dir / GROUND_TRUTH_FILE).open("w", encoding="utf-8", newline="\n") as truth_file,
    ):
        for chunk in chunks:
            for name, data in chunk.members:
                folder = name[: name.rindex("/")]
                if folder not in made:
                    os.makedirs(os.path.join(base, folder), exist_ok=True)
                    made.add(folder)
                fd = os.open(os.path.join(base, name), _WRITE_FLAGS, 0o644)
                try:
                    os.write(fd, data)
                finally:
                    os.close(fd)
            truth_file.writelines(chunk.truth_lines)
            if progress is not None:
                progress(chunk.done_tracks, tracks)
    summary = corpus.summary()
    info = {
        "format_version": CORPUS_FORMAT_VERSION,
        "generator": __name__,
        "seed": seed,
        "tracks": tracks,
        "styles": [style.name for style in STYLES],
        "summary": asdict(summary),
    }
    (out_dir / SUMMARY_FILE).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return summary


#: The top folder of every member of `write_corpus_archive`'s archive (the real dump's is
#: ``acousticbrainz-highlevel-json-20220623``).
ARCHIVE_ROOT = "acousticbrainz-highlevel-json-synthetic"
#: Appended to the archive's file name to name its ground truth file.
ARCHIVE_GROUND_TRUTH_SUFFIX = ".ground_truth.ndjson"
# Fixed member metadata, so that the same corpus gives the same bytes: the dump's date as mtime.
_ARCHIVE_MTIME = 1_655_942_400  # 2022-06-23T00:00:00Z
_ARCHIVE_MODE = 0o644
# zstd's multi-threaded mode writes the same bytes for any number of workers (>= 1) and however the
# input is split into writes; it differs from single-threaded mode (0 workers), which is never used.
_ZSTD_THREADS = max(1, os.cpu_count() or 1)

# The tar stream is written here rather than by `tarfile` (about 100 us a member, as much as making
# the document): the same bytes as ``tarfile.open(mode="w|")`` writes for these members (PAX format,
# which is plain ustar for an ASCII name of up to 100 characters), checked by the tests.
_TAR_BLOCK = 512
_TAR_RECORD = 20 * _TAR_BLOCK  # tarfile pads the archive to a multiple of this
_TAR_NAME_MAX = 100
_TAR_SIZE_MAX = 8**11 - 1  # eleven octal digits
_TAR_IDS = b"%07o\0" % _ARCHIVE_MODE + b"%07o\0" % 0 + b"%07o\0" % 0  # mode, uid, gid
_TAR_MTIME = b"%011o\0" % _ARCHIVE_MTIME
# After the checksum: type "0" (regular file), linkname, magic "ustar\0" and version "00", uname, gname,
# devmajor, devminor (empty for a regular file), prefix, then padding to the block.
_TAR_TAIL = b"0" + bytes(100) + b"ustar\x0000" + bytes(32 + 32 + 8 + 8 + 155 + 12)
# The checksum is the byte sum of the header with its own field read as eight spaces.
_TAR_FIXED_SUM = sum(_TAR_IDS) + sum(_TAR_MTIME) + 8 * ord(" ") + sum(_TAR_TAIL)


def _tar_header(name: str, size: int) -> bytes:
    """The header `tarfile` writes for a regular file `name` of `size` bytes with the fixed metadata.

    A name that a ustar header cannot hold (over 100 characters, not ASCII) gets tarfile's own
    header (with a PAX extended header before it).
    """
    if len(name) > _TAR_NAME_MAX or not name.isascii() or size > _TAR_SIZE_MAX:
        info = tarfile.TarInfo(name)
        info.size = size
        info.mtime = _ARCHIVE_MTIME
        info.mode = _ARCHIVE_MODE
        return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    encoded = name.encode("ascii")
    size_field = b"%011o\0" % size
    checksum = _TAR_FIXED_SUM + sum(encoded) + sum(size_field)
    return b"".join(
        (
            encoded.ljust(_TAR_NAME_MAX, b"\0"),
            _TAR_IDS,
            size_field,
            _TAR_MTIME,
            b"%06o\0 " % checksum,
            _TAR_TAIL,
        )
    )


class _TarWriter:
    """A tar stream into `out`: ``add`` members, ``flush`` them in one write, ``close`` to end it."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._pending: list[bytes] = []
        self._offset = 0

    def add(self, name: str, data: bytes) -> None:
        header = _tar_header(name, len(data))
        padding = bytes(-len(data) % _TAR_BLOCK)
        self._pending += (header, data, padding)
        self._offset += len(header) + len(data) + len(padding)

    def flush(self) -> None:
        if self._pending:
            self._out.write(b"".join(self._pending))
            self._pending.clear()

    def close(self) -> None:
        """Two zero blocks end the archive; tarfile then pads it to a whole record."""
        end = 2 * _TAR_BLOCK
        end += -(self._offset + end) % _TAR_RECORD
        self._pending.append(bytes(end))
        self._offset += end
        self.flush()


def _copying_text(tracks: int, seed: int) -> bytes:
    return (
        "This archive holds synthetic data shaped like the AcousticBrainz high-level JSON dump.\n"
        f"It was generated by musicrec_common.corpus (tracks={tracks}, seed={seed}, "
        f"format {CORPUS_FORMAT_VERSION}); none of it describes real recordings.\n"
        "The real dump's COPYING holds the CC0 1.0 Universal public domain dedication.\n"
    ).encode()


def write_corpus_archive(
    out_file: Path,
    *,
    tracks: int,
    seed: int = 0,
    root: str = ARCHIVE_ROOT,
    level: int = 1,
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
) -> CorpusSummary:
    """Write a corpus as one ``.tar.zst`` archive shaped like a dump archive (spec §1).

    The members are ``<root>/COPYING`` first, then ``<root>/<path>`` for every (path, document) of
    ``iter_corpus(tracks, seed=seed)``, in that order. The tar stream has the bytes Python's `tarfile`
    writes in stream mode (``w|``), as in the real dump, and is compressed with zstd at `level` (one
    frame, multi-threaded). On these documents level 1 is both the fastest level and smaller than 2-4
    (about 10:1, at several hundred MB/s); level 10 saves another 3% at over ten times the CPU time,
    which made compression the largest cost of generating an archive. Member metadata is fixed (mode
    0644, uid/gid 0, the dump date as mtime), so the same arguments give the same bytes. The ground
    truth goes to ``<out_file>.ground_truth.ndjson`` (`ARCHIVE_GROUND_TRUTH_SUFFIX`, the format of
    ``ground_truth.ndjson``).

    Memory stays bounded: documents are generated and compressed chunk by chunk. Both files are
    written under a ``.partial`` name and renamed at the end, so a file with the final name is
    complete. ``progress(done_tracks, total_tracks)`` is called after every chunk of 1,000 tracks.

    `workers` processes make the chunks (each chunk has its own seeded RNG, so the bytes are the same
    for any number) while this one writes the archive. 0: everything in this process; None: one per
    CPU from 20,000 tracks on, else 0. They are started with "spawn", so a script that calls this
    must guard its entry point (``if __name__ == "__main__":``), as always with multiprocessing.
    """
    out_file = Path(out_file)
    truth_file = out_file.with_name(out_file.name + ARCHIVE_GROUND_TRUTH_SUFFIX)
    partial = out_file.with_name(out_file.name + ".partial")
    truth_partial = truth_file.with_name(truth_file.name + ".partial")
    out_file.parent.mkdir(parents=True, exist_ok=True)
    corpus = _Corpus(tracks, seed)
    compressor = zstandard.ZstdCompressor(level=level, threads=_ZSTD_THREADS)
    pool = _pool_for(tracks, workers)
    try:
        with (
            _closing_pool(pool),
            closing(corpus.chunks(pool)) as chunks,
            partial.open("wb") as raw,
            truth_partial.open("w", encoding="utf-8", newline="\n") as truth,
            compressor.stream_writer(raw, closefd=False) as compressed,
        ):
            archive = _TarWriter(compressed)
            archive.add(f"{root}/COPYING", _copying_text(tracks, seed))
            for chunk in chunks:
                for name, data in chunk.members:
                    archive.add(f"{root}/{name}", data)
                archive.flush()
                truth.writelines(chunk.truth_lines)
                if progress is not None:
                    progress(chunk.done_tracks, tracks)
            archive.close()
        os.replace(partial, out_file)
        os.replace(truth_partial, truth_file)
    except BaseException:
        partial.unlink(missing_ok=True)
        truth_partial.unlink(missing_ok=True)
        raise
    return corpus.summary()


_TRUTH_LINE = (
    '{"album": %s, "artist": %s, "mbid": %s, "style": %s, "style_id": %d, "title": %s, "year": %d}\n'
)


def _truth_line(rec: _Recording) -> str:
    """The recording's `TruthRecord` as a ground truth line: ``json.dumps`` of its fields (default
    separators, not ASCII-escaped) in the order of `_TRUTH_LINE`."""
    quote = json.encoder.encode_basestring
    album = rec.album
    return _TRUTH_LINE % (
        quote(album.title),
        quote(rec.artist.name),
        quote(rec.mbid),
        quote(STYLES[album.style_id].name),
        album.style_id,
        quote(rec.title),
        album.year,
    )


def read_ground_truth(out_dir: Path) -> dict[str, TruthRecord]:
    """The ground truth written by `generate_corpus`, by recording MBID."""
    records: dict[str, TruthRecord] = {}
    with (Path(out_dir) / GROUND_TRUTH_FILE).open(encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            raw = json.loads(line)
            year = raw.get("year")
            record = TruthRecord(
                mbid=str(raw["mbid"]),
                style=str(raw["style"]),
                style_id=int(raw["style_id"]),
                artist=str(raw["artist"]),
                title=str(raw["title"]),
                album=str(raw["album"]),
                year=None if year is None else int(year),
            )
            records[record.mbid] = record
    return records
