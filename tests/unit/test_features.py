from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from musicrec_common.features import (
    FEATURE_DIM,
    FEATURE_LAYOUT,
    FEATURE_MODEL_VERSION,
    RAW_DIM,
    TRAIT_COLUMNS,
    TRAITS,
    FeatureBlock,
    build_feature_vector,
    raw_probability_vector,
    trait_values,
)

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "acousticbrainz"

# Spec §4.1, as written there.
SPEC_MODELS: dict[str, set[str]] = {
    "danceability": {"danceable", "not_danceable"},
    "gender": {"female", "male"},
    "genre_dortmund": {
        "alternative",
        "blues",
        "electronic",
        "folkcountry",
        "funksoulrnb",
        "jazz",
        "pop",
        "raphiphop",
        "rock",
    },
    "genre_electronic": {"ambient", "dnb", "house", "techno", "trance"},
    "genre_rosamerica": {"cla", "dan", "hip", "jaz", "pop", "rhy", "roc", "spe"},
    "genre_tzanetakis": {"blu", "cla", "cou", "dis", "hip", "jaz", "met", "pop", "reg", "roc"},
    "ismir04_rhythm": {
        "ChaChaCha",
        "Jive",
        "Quickstep",
        "Rumba-American",
        "Rumba-International",
        "Rumba-Misc",
        "Samba",
        "Tango",
        "VienneseWaltz",
        "Waltz",
    },
    "mood_acoustic": {"acoustic", "not_acoustic"},
    "mood_aggressive": {"aggressive", "not_aggressive"},
    "mood_electronic": {"electronic", "not_electronic"},
    "mood_happy": {"happy", "not_happy"},
    "mood_party": {"not_party", "party"},
    "mood_relaxed": {"not_relaxed", "relaxed"},
    "mood_sad": {"not_sad", "sad"},
    "moods_mirex": {"Cluster1", "Cluster2", "Cluster3", "Cluster4", "Cluster5"},
    "timbre": {"bright", "dark"},
    "tonal_atonal": {"atonal", "tonal"},
    "voice_instrumental": {"instrumental", "voice"},
}

BLOCKS: dict[str, FeatureBlock] = {block.model: block for block in FEATURE_LAYOUT}


def _slices() -> dict[str, slice]:
    slices: dict[str, slice] = {}
    offset = 0
    for block in FEATURE_LAYOUT:
        width = 1 if len(block.labels) == 2 else len(block.labels)
        slices[block.model] = slice(offset, offset + width)
        offset += width
    return slices


SLICES = _slices()


def load_highlevel(name: str) -> dict[str, Any]:
    highlevel: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))["highlevel"]
    return highlevel


PINK_FLOYD = "564ccd5c-c4d3-4752-9abf-c33bb085d6a5.json"
ZZ_TOP = "cd3f5efa-bc5e-4064-a765-960494ad4bb4.beets-merged-lowlevel-highlevel.json"
FIXTURE_NAMES = sorted(path.name for path in FIXTURES.glob("*.json"))


def doc(**distributions: Mapping[str, object]) -> dict[str, Any]:
    return {model: {"all": all_} for model, all_ in distributions.items()}


def random_docs(rng: np.random.Generator, alpha: float, count: int) -> list[dict[str, Any]]:
    """`count` documents whose every model's `all` is drawn from a symmetric Dirichlet(alpha)."""
    draws = {
        block.model: rng.dirichlet([alpha] * len(block.labels), size=count).tolist()
        for block in FEATURE_LAYOUT
    }
    return [
        {
            block.model: {"all": dict(zip(block.labels, draws[block.model][i], strict=True))}
            for block in FEATURE_LAYOUT
        }
        for i in range(count)
    ]


def cosine(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> float:
    a64 = a.astype(np.float64)
    b64 = b.astype(np.float64)
    return float(a64 @ b64 / (np.linalg.norm(a64) * np.linalg.norm(b64)))


def pairwise_cosines(vectors: list[npt.NDArray[np.float32]]) -> npt.NDArray[np.float64]:
    matrix = np.stack(vectors).astype(np.float64)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    gram = matrix @ matrix.T
    upper: npt.NDArray[np.float64] = gram[np.triu_indices(len(vectors), k=1)]
    return upper


def reference_vector(highlevel: dict[str, Any]) -> npt.NDArray[np.float64]:
    """Independent, straightforward numpy version of the documented transform (complete docs only)."""
    parts: list[npt.NDArray[np.float64]] = []
    for block in FEATURE_LAYOUT:
        probabilities = np.array(
            [highlevel[block.model]["all"][label] for label in block.labels], dtype=float
        )
        logs = np.log(np.clip(probabilities, 1e-4, 1 - 1e-4))
        clr = logs - logs.mean()
        scaled = clr * block.weight / math.sqrt(len(block.labels))
        if len(block.labels) == 2:
            # One component with the 2-d block's norm, signed like the first label.
            parts.append(np.array([math.copysign(float(np.linalg.norm(scaled)), scaled[0])]))
        else:
            parts.append(scaled)
    vector = np.concatenate(parts)
    norm = np.linalg.norm(vector)
    result: npt.NDArray[np.float64] = vector / norm if norm > 0 else vector
    return result


class TestLayout:
    def test_version(self) -> None:
        assert FEATURE_MODEL_VERSION == "clr-v1"

    def test_all_18_models_with_spec_labels_sorted(self) -> None:
        assert len(FEATURE_LAYOUT) == 18
        assert {block.model: set(block.labels) for block in FEATURE_LAYOUT} == SPEC_MODELS
        for block in FEATURE_LAYOUT:
            assert list(block.labels) == sorted(block.labels)
        assert [block.model for block in FEATURE_LAYOUT] == sorted(SPEC_MODELS)

    def test_weights(self) -> None:
        for block in FEATURE_LAYOUT:
            assert block.weight == (1.5 if block.model.startswith("genre_") else 1.0)

    def test_dimensions(self) -> None:
        # 12 binary models give one component each; the six others 9+5+8+10+10+5.
        assert FEATURE_DIM == 12 + 9 + 5 + 8 + 10 + 10 + 5 == 59
        assert RAW_DIM == 2 * 12 + 47 == 71
        assert sum(block.dim for block in FEATURE_LAYOUT) == FEATURE_DIM


class TestBuildFeatureVector:
    @pytest.mark.parametrize("name", FIXTURE_NAMES)
    def test_fixture_shape_dtype_norm(self, name: str) -> None:
        vector = build_feature_vector(load_highlevel(name))
        assert vector.dtype == np.float32
        assert vector.shape == (FEATURE_DIM,)
        assert np.all(np.isfinite(vector))
        assert float(np.linalg.norm(vector)) == pytest.approx(1.0, abs=1e-6)

    @pytest.mark.parametrize("name", [name for name in FIXTURE_NAMES if name != ZZ_TOP])
    def test_matches_reference_on_fixtures(self, name: str) -> None:
        highlevel = load_highlevel(name)
        np.testing.assert_allclose(build_feature_vector(highlevel), reference_vector(highlevel), atol=1e-6)

    def test_matches_reference_on_random_docs(self) -> None:
        rng = np.random.default_rng(7)
        for highlevel in random_docs(rng, 0.7, 50):
            np.testing.assert_allclose(
                build_feature_vector(highlevel), reference_vector(highlevel), atol=1e-6
            )

    def test_multi_label_blocks_are_centred(self) -> None:
        vector = build_feature_vector(load_highlevel(PINK_FLOYD))
        for block in FEATURE_LAYOUT:
            if len(block.labels) > 2:
                assert float(vector[SLICES[block.model]].sum()) == pytest.approx(0.0, abs=1e-6)

    def test_uniform_distributions_give_zero_vector(self) -> None:
        highlevel = {
            block.model: {"all": {label: 1 / len(block.labels) for label in block.labels}}
            for block in FEATURE_LAYOUT
        }
        vector = build_feature_vector(highlevel)
        assert vector.shape == (FEATURE_DIM,)
        assert not np.any(vector)

    def test_empty_highlevel_is_zero(self) -> None:
        vector = build_feature_vector({})
        assert vector.dtype == np.float32
        assert vector.shape == (FEATURE_DIM,)
        assert not np.any(vector)

    def test_binary_value_and_relative_block_scale(self) -> None:
        vector = build_feature_vector(
            doc(
                danceability={"danceable": 0.9, "not_danceable": 0.1},
                gender={"female": 0.2, "male": 0.8},
            )
        )
        dance = float(vector[SLICES["danceability"]][0])
        gender = float(vector[SLICES["gender"]][0])
        # (log p_first - log p_second) / √2, times 1/√2: the ratio is that of the log-odds.
        assert dance / gender == pytest.approx(math.log(9) / math.log(0.25), rel=1e-6)
        assert dance > 0 > gender
        assert dance**2 + gender**2 == pytest.approx(1.0, abs=1e-6)

    def test_binary_single_value_has_the_norm_of_the_2d_clr(self) -> None:
        # The same 2-label distribution in a binary model and as the first two labels of a
        # 2-label "block" computed by hand must give the same contribution.
        p = 0.7
        vector = build_feature_vector(
            doc(
                timbre={"bright": p, "dark": 1 - p},
                genre_electronic={"ambient": 0.6, "dnb": 0.1, "house": 0.1, "techno": 0.1, "trance": 0.1},
            )
        )
        clr = np.log([p, 1 - p]) - np.log([p, 1 - p]).mean()
        binary_expected = float(np.linalg.norm(clr)) / math.sqrt(2)
        electronic_logs = np.log([0.6, 0.1, 0.1, 0.1, 0.1])
        electronic = (electronic_logs - electronic_logs.mean()) * 1.5 / math.sqrt(5)
        total = math.sqrt(binary_expected**2 + float(electronic @ electronic))
        assert float(vector[SLICES["timbre"]][0]) == pytest.approx(binary_expected / total, rel=1e-5)

    def test_one_hot_blocks_scale_by_inverse_sqrt_of_label_count(self) -> None:
        # A (clipped) one-hot CLR block over k labels has norm |log ε|·√((k-1)/k); after the 1/√k scaling
        # that is |log ε|·√(k-1)/k, so a confident 10-label model weighs 0.75 of a confident 5-label one.
        def one_hot(labels: tuple[str, ...]) -> dict[str, float]:
            return {label: (1.0 if i == 0 else 0.0) for i, label in enumerate(labels)}

        rhythm = BLOCKS["ismir04_rhythm"]
        mirex = BLOCKS["moods_mirex"]
        vector = build_feature_vector(
            doc(ismir04_rhythm=one_hot(rhythm.labels), moods_mirex=one_hot(mirex.labels))
        )
        rhythm_norm = float(np.linalg.norm(vector[SLICES["ismir04_rhythm"]]))
        mirex_norm = float(np.linalg.norm(vector[SLICES["moods_mirex"]]))
        assert rhythm_norm / mirex_norm == pytest.approx((math.sqrt(9) / 10) / (math.sqrt(4) / 5), rel=1e-4)

    def test_block_influence_does_not_grow_with_label_count(self) -> None:
        # Over random documents, the mean squared norm of an equally weighted 10-label block stays within
        # a factor 2 of a 5-label or 2-label block's (without the 1/√k scaling it would be ~8 times the
        # binary block's: the scaling divides the energy ratio by 10/2).
        rng = np.random.default_rng(5)
        vectors = [build_feature_vector(d) for d in random_docs(rng, 0.7, 300)]
        energy = {
            model: float(np.mean([float(v[SLICES[model]] @ v[SLICES[model]]) for v in vectors]))
            for model in ("ismir04_rhythm", "moods_mirex", "timbre")
        }
        assert energy["ismir04_rhythm"] <= 2 * energy["moods_mirex"]
        assert energy["ismir04_rhythm"] <= 2 * energy["timbre"]
        assert energy["moods_mirex"] <= 2 * energy["timbre"]

    def test_near_uniform_rounding_noise_is_not_amplified(self) -> None:
        highlevel = doc(genre_dortmund={label: 1 / 9 for label in BLOCKS["genre_dortmund"].labels})
        assert not np.any(build_feature_vector(highlevel))

    def test_clipping(self) -> None:
        base = build_feature_vector(
            doc(
                mood_sad={"not_sad": 1.0, "sad": 0.0},
                genre_rosamerica={
                    "cla": 0.0,
                    "dan": 0.0,
                    "hip": 0.0,
                    "jaz": 1.0,
                    "pop": 0.0,
                    "rhy": 0.0,
                    "roc": 0.0,
                    "spe": 0.0,
                },
            )
        )
        nearly = build_feature_vector(
            doc(
                mood_sad={"not_sad": 1 - 1e-9, "sad": 1e-12},
                genre_rosamerica={
                    "cla": 1e-7,
                    "dan": 0.0,
                    "hip": -0.5,
                    "jaz": 1.5,
                    "pop": 1e-30,
                    "rhy": 0.0,
                    "roc": 0.0,
                    "spe": 0.0,
                },
            )
        )
        np.testing.assert_array_equal(base, nearly)
        assert np.all(np.isfinite(base))

    def test_missing_model_is_a_zero_block(self) -> None:
        highlevel = load_highlevel(PINK_FLOYD)
        del highlevel["genre_dortmund"]
        highlevel["mood_happy"] = "not an object"
        highlevel["timbre"] = {"all": ["bright", "dark"]}
        highlevel["unknown_model"] = {"all": {"x": 0.9, "y": 0.1}}
        vector = build_feature_vector(highlevel)
        for model in ("genre_dortmund", "mood_happy", "timbre"):
            assert not np.any(vector[SLICES[model]])
        assert float(np.linalg.norm(vector)) == pytest.approx(1.0, abs=1e-6)

    def test_unknown_labels_ignored_and_missing_labels_neutral(self) -> None:
        # The beets fixture has `bl`/`co` instead of `blu`/`cou` in genre_tzanetakis.
        highlevel = load_highlevel(ZZ_TOP)
        assert "bl" in highlevel["genre_tzanetakis"]["all"]
        vector = build_feature_vector(highlevel)
        block = vector[SLICES["genre_tzanetakis"]]
        labels = BLOCKS["genre_tzanetakis"].labels
        assert block[labels.index("blu")] == 0.0
        assert block[labels.index("cou")] == 0.0
        # The eight present labels are centred among themselves.
        assert float(block.sum()) == pytest.approx(0.0, abs=1e-6)
        present = {k: v for k, v in highlevel["genre_tzanetakis"]["all"].items() if k in labels}
        logs = np.log([present[label] for label in labels if label in present])
        expected_direction = logs - logs.mean()
        actual = np.array([block[labels.index(label)] for label in labels if label in present], dtype=float)
        np.testing.assert_allclose(
            actual / np.linalg.norm(actual),
            expected_direction / np.linalg.norm(expected_direction),
            atol=1e-5,
        )

    @pytest.mark.parametrize(
        "bad", [None, "0.5", True, False, float("nan"), float("inf"), [0.5], {"v": 1}, 10**400]
    )
    def test_non_numeric_values_are_neutral(self, bad: object) -> None:
        clean = doc(
            moods_mirex={"Cluster1": 0.5, "Cluster2": 0.2, "Cluster3": 0.1, "Cluster4": 0.1, "Cluster5": 0.1}
        )
        dirty = doc(
            moods_mirex={"Cluster1": 0.5, "Cluster2": 0.2, "Cluster3": 0.1, "Cluster4": 0.1, "Cluster5": bad}
        )
        block = build_feature_vector(dirty)[SLICES["moods_mirex"]]
        assert block[4] == 0.0
        assert np.all(np.isfinite(block))
        assert float(np.linalg.norm(block)) == pytest.approx(1.0, abs=1e-6)
        assert not np.allclose(block, build_feature_vector(clean)[SLICES["moods_mirex"]])

    def test_binary_with_one_label_missing_is_neutral(self) -> None:
        vector = build_feature_vector(
            doc(mood_party={"party": 0.9}, voice_instrumental={"voice": 0.9, "instrumental": "x"})
        )
        assert not np.any(vector)

    def test_int_probabilities_accepted(self) -> None:
        as_int = build_feature_vector(doc(mood_party={"not_party": 1, "party": 0}))
        as_float = build_feature_vector(doc(mood_party={"not_party": 1.0, "party": 0.0}))
        np.testing.assert_array_equal(as_int, as_float)
        assert float(np.linalg.norm(as_int)) == pytest.approx(1.0, abs=1e-6)

    def test_entry_version_and_extra_keys_do_not_matter(self) -> None:
        highlevel = load_highlevel(PINK_FLOYD)
        stripped = {model: {"all": entry["all"]} for model, entry in highlevel.items()}
        np.testing.assert_array_equal(build_feature_vector(highlevel), build_feature_vector(stripped))


class TestSimilarityBehaviour:
    """The point of the CLR vector: unrelated tracks no longer look alike."""

    @pytest.mark.parametrize(("alpha", "raw_floor"), [(0.7, 0.6), (2.0, 0.8)])
    def test_random_docs(self, alpha: float, raw_floor: float) -> None:
        rng = np.random.default_rng(20240611)
        docs = random_docs(rng, alpha, 500)
        raw = pairwise_cosines([raw_probability_vector(d) for d in docs])
        clr = pairwise_cosines([build_feature_vector(d) for d in docs])
        # Raw probability vectors of unrelated tracks all point the same way.
        assert raw.mean() > raw_floor
        # CLR vectors of unrelated tracks are nearly orthogonal on average.
        assert abs(clr.mean()) < 0.05
        assert float(np.percentile(clr, 95)) < 0.35
        assert float(np.percentile(np.abs(clr), 95)) < 0.4

    def test_identical_docs_have_cosine_one(self) -> None:
        highlevel = load_highlevel(PINK_FLOYD)
        copy = json.loads(json.dumps(highlevel))
        assert cosine(build_feature_vector(highlevel), build_feature_vector(copy)) == pytest.approx(
            1.0, abs=1e-6
        )

    @staticmethod
    def _perturbed(highlevel: dict[str, Any], rng: np.random.Generator, sigma: float) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for model, entry in highlevel.items():
            labels = list(entry["all"])
            values = np.array([entry["all"][label] for label in labels]) * np.exp(
                rng.normal(0, sigma, len(labels))
            )
            values /= values.sum()
            out[model] = {"all": dict(zip(labels, values.tolist(), strict=True))}
        return out

    @staticmethod
    def _genre_flipped(highlevel: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(json.dumps(highlevel))
        for model, entry in out.items():
            if model.startswith("genre_"):
                labels = sorted(entry["all"])
                values = [entry["all"][label] for label in labels]
                entry["all"] = dict(zip(labels, reversed(values), strict=True))
        return out

    @pytest.mark.parametrize("name", FIXTURE_NAMES)
    def test_flipped_genres_score_lower_than_a_perturbed_copy_fixture(self, name: str) -> None:
        rng = np.random.default_rng(3)
        highlevel = {k: v for k, v in load_highlevel(name).items() if isinstance(v, dict) and "all" in v}
        base = build_feature_vector(highlevel)
        near = cosine(base, build_feature_vector(self._perturbed(highlevel, rng, 0.1)))
        flipped = cosine(base, build_feature_vector(self._genre_flipped(highlevel)))
        assert near > 0.95
        assert flipped < near - 0.1

    def test_flipped_genres_score_lower_than_a_perturbed_copy_random(self) -> None:
        rng = np.random.default_rng(11)
        for highlevel in random_docs(rng, 0.7, 100):
            base = build_feature_vector(highlevel)
            near = cosine(base, build_feature_vector(self._perturbed(highlevel, rng, 0.1)))
            flipped = cosine(base, build_feature_vector(self._genre_flipped(highlevel)))
            assert flipped < near

    def test_raw_vector_cannot_tell_as_well(self) -> None:
        # On the real Pink Floyd doc, the raw vector barely notices flipped genres; the CLR vector does.
        highlevel = load_highlevel(PINK_FLOYD)
        flipped = self._genre_flipped(highlevel)
        raw = cosine(raw_probability_vector(highlevel), raw_probability_vector(flipped))
        clr = cosine(build_feature_vector(highlevel), build_feature_vector(flipped))
        assert clr < raw


class TestRawProbabilityVector:
    def test_layout_and_values(self) -> None:
        highlevel = load_highlevel(PINK_FLOYD)
        vector = raw_probability_vector(highlevel)
        assert vector.dtype == np.float32
        assert vector.shape == (RAW_DIM,)
        expected = [highlevel[b.model]["all"][label] for b in FEATURE_LAYOUT for label in b.labels]
        np.testing.assert_allclose(vector, np.array(expected, dtype=np.float32))

    def test_missing_and_bad_values_are_zero(self) -> None:
        vector = raw_probability_vector(doc(danceability={"danceable": "0.3", "not_danceable": 0.7}))
        assert vector[0] == 0.0
        assert vector[1] == pytest.approx(0.7)
        assert float(vector[2:].sum()) == 0.0
        assert not np.any(raw_probability_vector({}))


def test_traits_are_the_positive_sides_of_binary_models_read_from_all() -> None:
    document = json.loads((FIXTURES / "564ccd5c-c4d3-4752-9abf-c33bb085d6a5.json").read_text())
    highlevel = document["highlevel"]
    values = trait_values(highlevel)
    assert len(values) == len(TRAITS)
    for trait, value in zip(TRAITS, values, strict=True):
        assert value == highlevel[trait.model]["all"][trait.label]
    # Missing models, missing labels, non-numbers and impossible probabilities give None.
    broken = json.loads(json.dumps(highlevel))
    del broken["mood_happy"]
    del broken["timbre"]["all"]["bright"]
    broken["mood_sad"]["all"]["sad"] = "0.5"
    broken["danceability"]["all"]["danceable"] = 1.5
    got = dict(zip([t.name for t in TRAITS], trait_values(broken), strict=True))
    assert got["happy"] is None
    assert got["bright"] is None
    assert got["sad"] is None
    assert got["danceability"] is None
    assert got["party"] == highlevel["mood_party"]["all"]["party"]


def test_trait_columns_point_at_the_trait_labels_in_a_raw_row() -> None:
    document = json.loads((FIXTURES / "564ccd5c-c4d3-4752-9abf-c33bb085d6a5.json").read_text())
    raw = raw_probability_vector(document["highlevel"])
    expected = np.array(trait_values(document["highlevel"]), dtype=np.float32)
    np.testing.assert_array_equal(raw[list(TRAIT_COLUMNS)], expected)
