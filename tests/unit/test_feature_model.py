from __future__ import annotations

import dataclasses
import json
import math
import pickle
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from musicrec_common.acousticbrainz import parse_document_detailed
from musicrec_common.feature_model import (
    DEFAULT_GROUP_WEIGHTS,
    DEFAULT_PRIOR_COUNT,
    FEATURE_MODEL_SCHEME,
    GROUP_MODELS,
    GROUPS,
    PRIOR_SCALE,
    SCALE_FLOOR,
    FeatureModel,
    FeatureModelError,
    block_columns,
    fit,
    fit_chunks,
    group_agreement,
    group_columns,
    group_of_model,
)
from musicrec_common.features import FEATURE_DIM, FEATURE_LAYOUT, FEATURE_MODEL_VERSION

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "acousticbrainz"
FIXTURE_FILES = sorted(FIXTURES.glob("*.json"))
# The same recording in the API format and in the pre-2016 format.
SAME_RECORDING = (
    "564ccd5c-c4d3-4752-9abf-c33bb085d6a5.json",
    "564ccd5c-c4d3-4752-9abf-c33bb085d6a5.legacy-2015-format.json",
)

Matrix = npt.NDArray[np.float64]

# A fixed per-label bias for every classifier: the "taste" of the classifiers that every track shares.
_BIAS = {
    block.model: np.random.default_rng(1000 + index).normal(0.0, 1.5, len(block.labels))
    for index, block in enumerate(FEATURE_LAYOUT)
}


def clr_like(rng: np.random.Generator, n: int, *, bias: float = 1.0) -> Matrix:
    """Synthetic clr-v1-like rows: per block, biased random logits, centred (CLR), binary blocks stored
    as one value; the row L2-normalised. `bias` scales the offset that every row shares."""
    blocks: list[Matrix] = []
    for block in FEATURE_LAYOUT:
        k = len(block.labels)
        logits = bias * _BIAS[block.model] + rng.normal(0.0, 1.0, (n, k)) * rng.uniform(0.5, 1.5, k)
        clr = logits - logits.mean(axis=1, keepdims=True)
        blocks.append((clr[:, :1] - clr[:, 1:]) / math.sqrt(2.0) if k == 2 else clr / math.sqrt(k))
    rows = np.hstack(blocks)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows


def mean_pair_cosine(vectors: npt.NDArray[Any], rng: np.random.Generator, pairs: int = 4000) -> float:
    index = rng.integers(0, vectors.shape[0], (pairs, 2))
    index = index[index[:, 0] != index[:, 1]]
    left = vectors[index[:, 0]].astype(np.float64)
    right = vectors[index[:, 1]].astype(np.float64)
    return float(np.mean(np.einsum("ij,ij->i", left, right)))


def row_norms(vectors: npt.NDArray[Any]) -> Matrix:
    as64 = vectors.astype(np.float64)
    norms: Matrix = np.sqrt(np.einsum("ij,ij->i", as64, as64))
    return norms


@pytest.fixture(scope="module")
def corpus() -> Matrix:
    return clr_like(np.random.default_rng(7), 3000)


@pytest.fixture(scope="module")
def model(corpus: Matrix) -> FeatureModel:
    return fit(corpus)


@pytest.fixture(scope="module")
def real_vectors() -> dict[str, npt.NDArray[np.float32]]:
    vectors: dict[str, npt.NDArray[np.float32]] = {}
    for path in FIXTURE_FILES:
        parsed, _status = parse_document_detailed(path.read_bytes(), source=path.name, mbid=path.name[:36])
        vectors[path.name] = parsed.features
    return vectors


class TestLayout:
    def test_groups_cover_every_column_exactly_once(self) -> None:
        columns = [column for group in GROUPS for column in group_columns(group)]
        assert sorted(columns) == list(range(FEATURE_DIM))

    def test_blocks_tile_the_vector_in_layout_order(self) -> None:
        start = 0
        for block in FEATURE_LAYOUT:
            assert block_columns(block.model) == range(start, start + block.dim)
            start += block.dim
        assert start == FEATURE_DIM

    def test_group_columns_are_the_union_of_its_blocks(self) -> None:
        for group, models in GROUP_MODELS.items():
            expected = sorted(column for model in models for column in block_columns(model))
            assert list(group_columns(group)) == expected
            for model in models:
                assert group_of_model(model) == group

    def test_every_layout_model_has_a_group(self) -> None:
        assert {block.model for block in FEATURE_LAYOUT} == {m for ms in GROUP_MODELS.values() for m in ms}

    def test_groups_and_sizes(self) -> None:
        assert GROUPS == ("genre", "mood", "danceability", "voice", "gender", "timbre", "tonality", "rhythm")
        sizes = {group: len(group_columns(group)) for group in GROUPS}
        assert sizes == {
            "genre": 9 + 8 + 10 + 5,
            "mood": 7 + 5,
            "danceability": 1,
            "voice": 1,
            "gender": 1,
            "timbre": 1,
            "tonality": 1,
            "rhythm": 10,
        }

    def test_unknown_names(self) -> None:
        with pytest.raises(FeatureModelError, match="unknown group 'tempo'"):
            group_columns("tempo")
        with pytest.raises(FeatureModelError, match="unknown model 'genre_x'"):
            block_columns("genre_x")
        with pytest.raises(FeatureModelError, match="unknown model"):
            group_of_model("genre_x")

    def test_default_weights(self) -> None:
        tuned = {"genre": 2.0, "mood": 1.5, "rhythm": 1.0}
        assert dict(DEFAULT_GROUP_WEIGHTS) == {group: tuned.get(group, 0.5) for group in GROUPS}
        with pytest.raises(TypeError):
            DEFAULT_GROUP_WEIGHTS["genre"] = 2.0  # type: ignore[index]


class TestTransform:
    def test_random_pairs_are_centred_near_zero(self, corpus: Matrix, model: FeatureModel) -> None:
        rng = np.random.default_rng(11)
        held_out = clr_like(rng, 1500)
        # The shared classifier bias makes raw vectors of unrelated tracks look alike ...
        assert mean_pair_cosine(held_out, rng) > 0.3
        # ... the fitted model removes it, on the corpus and on tracks it has not seen.
        assert abs(mean_pair_cosine(model.transform(held_out), rng)) < 0.03
        assert abs(mean_pair_cosine(model.transform(corpus), rng)) < 0.03

    def test_rows_are_unit_float32(self, corpus: Matrix, model: FeatureModel) -> None:
        out = model.transform(corpus)
        assert out.dtype == np.float32
        assert out.shape == corpus.shape
        np.testing.assert_allclose(row_norms(out), 1.0, atol=1e-6)

    def test_accepts_float32_and_a_single_vector(self, corpus: Matrix, model: FeatureModel) -> None:
        batch = model.transform(corpus[:5].astype(np.float32))
        single = model.transform(corpus[2].astype(np.float32))
        assert single.shape == (FEATURE_DIM,)
        assert single.dtype == np.float32
        np.testing.assert_allclose(single, batch[2], atol=1e-6)
        assert model.transform(corpus[2].tolist()).shape == (FEATURE_DIM,)

    def test_empty_batch(self, model: FeatureModel) -> None:
        out = model.transform(np.zeros((0, FEATURE_DIM), dtype=np.float32))
        assert out.shape == (0, FEATURE_DIM)
        assert out.dtype == np.float32

    def test_zero_rows_stay_zero(self, corpus: Matrix, model: FeatureModel) -> None:
        rows = corpus[:6].copy()
        rows[[1, 4]] = 0.0
        out = model.transform(rows)
        assert not out[[1, 4]].any()
        np.testing.assert_allclose(row_norms(out[[0, 2, 3, 5]]), 1.0, atol=1e-6)
        assert not model.transform(np.zeros(FEATURE_DIM)).any()

    def test_a_row_equal_to_the_mean_becomes_zero_not_noise(self, model: FeatureModel) -> None:
        assert not model.transform(model.mean).any()

    def test_missing_block_stays_zero(self, corpus: Matrix, model: FeatureModel) -> None:
        row = corpus[0].copy()
        columns = list(block_columns("genre_rosamerica"))
        row[columns] = 0.0
        out = model.transform(row)
        assert not out[columns].any()
        assert float(np.linalg.norm(out)) == pytest.approx(1.0, abs=1e-6)

    def test_formula(self, corpus: Matrix, model: FeatureModel) -> None:
        weights = np.empty(FEATURE_DIM)
        for group in GROUPS:
            columns = list(group_columns(group))
            weights[columns] = model.group_weights[group] / math.sqrt(len(columns))
        np.testing.assert_array_equal(model.column_weights, weights)
        z = (corpus[:10] - model.mean) / model.scale * weights
        expected = z / np.linalg.norm(z, axis=1, keepdims=True)
        np.testing.assert_allclose(model.transform(corpus[:10]), expected, atol=1e-6)

    def test_group_weights_set_each_groups_share(self, corpus: Matrix) -> None:
        weights = {**DEFAULT_GROUP_WEIGHTS, "genre": 2.0, "rhythm": 0.5}
        out = fit(corpus, group_weights=weights, prior_count=0).transform(corpus).astype(np.float64)
        total = sum(w * w for w in weights.values())
        for group in GROUPS:
            columns = list(group_columns(group))
            share = float(np.mean(np.sum(out[:, columns] ** 2, axis=1)))
            assert share == pytest.approx(weights[group] ** 2 / total, abs=0.03), group

    def test_zero_weight_silences_a_group(self, corpus: Matrix) -> None:
        out = fit(corpus, group_weights={**DEFAULT_GROUP_WEIGHTS, "gender": 0.0}).transform(corpus[:20])
        assert not out[:, list(group_columns("gender"))].any()
        np.testing.assert_allclose(row_norms(out), 1.0, atol=1e-6)

    @pytest.mark.parametrize(
        ("vectors", "message"),
        [
            (np.zeros((3, FEATURE_DIM - 1)), r"expected shape \(n, 59\), got \(3, 58\)"),
            (np.zeros(FEATURE_DIM + 1), r"expected shape \(59,\) or \(n, 59\), got \(60,\)"),
            (np.zeros((2, 3, FEATURE_DIM)), r"got \(2, 3, 59\)"),
            (np.array(0.5), r"got \(\)"),
            (np.array([["a"] * FEATURE_DIM]), "expected real numbers, got an array of dtype <U1"),
            (np.ones((2, FEATURE_DIM), dtype=bool), "dtype bool"),
            ([[0.0] * FEATURE_DIM, [0.0]], "not an array of numbers"),
        ],
    )
    def test_rejects_bad_shapes_and_types(
        self, model: FeatureModel, vectors: npt.ArrayLike, message: str
    ) -> None:
        with pytest.raises(FeatureModelError, match=message):
            model.transform(vectors)

    @pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
    def test_rejects_non_finite_and_names_the_row(
        self, corpus: Matrix, model: FeatureModel, bad: float
    ) -> None:
        rows = corpus[:5].copy()
        rows[3, 17] = bad
        with pytest.raises(FeatureModelError, match="row 3 contains NaN or infinity"):
            model.transform(rows)

    def test_error_is_a_value_error(self) -> None:
        assert issubclass(FeatureModelError, ValueError)


class TestFit:
    def test_without_prior_it_is_the_plain_mean_and_std(self, corpus: Matrix) -> None:
        fitted = fit(corpus, prior_count=0)
        np.testing.assert_allclose(fitted.mean, corpus.mean(axis=0), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(fitted.scale, corpus.std(axis=0), rtol=1e-9)
        assert fitted.fitted_on == corpus.shape[0]

    def test_prior_formula(self, corpus: Matrix) -> None:
        data = corpus[:40]
        count, prior_sd = 25.0, 0.2
        fitted = fit(data, prior_count=count, prior_scale=prior_sd)
        total = data.shape[0] + count
        mean = data.sum(axis=0) / total
        variance = (np.sum(data**2, axis=0) + count * prior_sd**2) / total - mean**2
        np.testing.assert_allclose(fitted.mean, mean, rtol=1e-12)
        np.testing.assert_allclose(fitted.scale, np.sqrt(variance), rtol=1e-12)

    def test_the_prior_fades_as_the_corpus_grows(self, corpus: Matrix) -> None:
        plain = fit(corpus, prior_count=0)
        small = fit(corpus[:30])
        large = fit(corpus)
        gap_small = np.abs(small.mean - plain.mean).max()
        gap_large = np.abs(large.mean - plain.mean).max()
        assert gap_large < gap_small / 10

    def test_zero_rows_are_ignored(self, corpus: Matrix) -> None:
        data = corpus[:500]
        padded = np.vstack([np.zeros((7, FEATURE_DIM)), data, np.zeros((3, FEATURE_DIM))])
        plain, with_zeros = fit(data), fit(padded)
        assert with_zeros.fitted_on == plain.fitted_on == 500
        np.testing.assert_allclose(with_zeros.mean, plain.mean, rtol=1e-12, atol=1e-16)
        np.testing.assert_allclose(with_zeros.scale, plain.scale, rtol=1e-12)

    def test_missing_blocks_do_not_count_in_their_columns(self, corpus: Matrix) -> None:
        data = corpus[:500]
        extra = corpus[500:800].copy()
        genre = list(group_columns("genre"))
        extra[:, genre] = 0.0  # these tracks have no genre models
        plain, mixed = fit(data, prior_count=0), fit(np.vstack([data, extra]), prior_count=0)
        np.testing.assert_allclose(mixed.mean[genre], plain.mean[genre], rtol=1e-12, atol=1e-16)
        np.testing.assert_allclose(mixed.scale[genre], plain.scale[genre], rtol=1e-12)
        assert mixed.fitted_on == 800
        others = [column for column in range(FEATURE_DIM) if column not in genre]
        assert not np.allclose(mixed.mean[others], plain.mean[others])

    @pytest.mark.parametrize("prior_count", [DEFAULT_PRIOR_COUNT, 0.0])
    def test_no_rows_gives_the_prior(self, corpus: Matrix, prior_count: float) -> None:
        for empty in (np.zeros((0, FEATURE_DIM), dtype=np.float32), np.zeros((4, FEATURE_DIM))):
            fitted = fit(empty, prior_count=prior_count)
            assert fitted.fitted_on == 0
            np.testing.assert_array_equal(fitted.mean, np.zeros(FEATURE_DIM))
            np.testing.assert_array_equal(fitted.scale, np.full(FEATURE_DIM, PRIOR_SCALE))
        # Only the group weights act: the clr-v1 vector re-weighted and normalised.
        weighted = corpus[:5] * fitted.column_weights
        expected = weighted / np.linalg.norm(weighted, axis=1, keepdims=True)
        np.testing.assert_allclose(fitted.transform(corpus[:5]), expected, atol=1e-6)

    def test_one_row(self, corpus: Matrix) -> None:
        fitted = fit(corpus[:1])
        assert fitted.fitted_on == 1
        assert np.isfinite(fitted.mean).all()
        assert (fitted.scale >= SCALE_FLOOR).all()
        out = fitted.transform(corpus[:50])
        np.testing.assert_allclose(row_norms(out), 1.0, atol=1e-6)
        # Without a prior one row is its own mean: it says nothing any more.
        assert not fit(corpus[:1], prior_count=0).transform(corpus[0]).any()

    def test_constant_column_gets_the_floor(self, corpus: Matrix) -> None:
        data = corpus[:200].copy()
        timbre = block_columns("timbre").start
        data[:, timbre] = 0.25
        fitted = fit(data, prior_count=0)
        assert fitted.scale[timbre] == SCALE_FLOOR
        assert fitted.mean[timbre] == pytest.approx(0.25)
        np.testing.assert_allclose(row_norms(fitted.transform(data)), 1.0, atol=1e-6)

    def test_deterministic(self, corpus: Matrix) -> None:
        assert fit(corpus) == fit(corpus.copy())
        assert fit(corpus).model_id == fit(corpus.copy()).model_id

    def test_float32_input(self, corpus: Matrix) -> None:
        as32 = corpus.astype(np.float32)
        np.testing.assert_allclose(fit(as32).mean, fit(as32.astype(np.float64)).mean, rtol=1e-12)

    def test_chunks_give_the_same_model_up_to_rounding(self, corpus: Matrix) -> None:
        whole = fit(corpus)
        chunked = fit_chunks(corpus[start : start + 700] for start in range(0, corpus.shape[0], 700))
        assert chunked.fitted_on == whole.fitted_on
        np.testing.assert_allclose(chunked.mean, whole.mean, rtol=1e-10, atol=1e-15)
        np.testing.assert_allclose(chunked.scale, whole.scale, rtol=1e-10)
        assert fit_chunks([]) == fit(np.zeros((0, FEATURE_DIM)))

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"prior_count": -1.0}, "prior_count: expected a finite number >= 0"),
            ({"prior_count": math.nan}, "prior_count"),
            ({"prior_scale": 0.0}, "prior_scale: expected a finite number > 0"),
            ({"group_weights": {"genre": 1.0}}, r"missing \['mood'"),
            ({"group_weights": {**DEFAULT_GROUP_WEIGHTS, "tempo": 1.0}}, r"unknown \['tempo'\]"),
            ({"group_weights": {**DEFAULT_GROUP_WEIGHTS, "mood": -0.5}}, r"group_weights\['mood'\]"),
            ({"group_weights": {**DEFAULT_GROUP_WEIGHTS, "mood": math.inf}}, r"group_weights\['mood'\]"),
            ({"group_weights": dict.fromkeys(GROUPS, 0.0)}, "at least one weight must be positive"),
        ],
    )
    def test_rejects_bad_parameters(self, corpus: Matrix, kwargs: dict[str, Any], message: str) -> None:
        with pytest.raises(FeatureModelError, match=message):
            fit(corpus[:10], **kwargs)

    def test_rejects_bad_input(self, corpus: Matrix) -> None:
        with pytest.raises(FeatureModelError, match=r"expected shape \(n, 59\), got \(59,\)"):
            fit(corpus[0])
        rows = corpus[:10].copy()
        rows[6, 0] = math.nan
        with pytest.raises(FeatureModelError, match="row 6 contains NaN"):
            fit(rows)
        with pytest.raises(FeatureModelError, match="row 13 contains NaN"):
            fit_chunks([corpus[:10], rows[3:8]])
        with pytest.raises(FeatureModelError, match=r"chunk 1: expected shape \(n, 59\)"):
            fit_chunks([corpus[:10], corpus[:3, :10]])


class TestIdentity:
    def test_id_format(self, model: FeatureModel) -> None:
        assert re.fullmatch(r"fm-v1:[0-9a-f]{16}", model.model_id)
        assert model.scheme == FEATURE_MODEL_SCHEME == "fm-v1"

    def test_equal_parameters_give_the_same_id(self, model: FeatureModel) -> None:
        twin = FeatureModel(
            mean=model.mean.copy(),
            scale=model.scale.copy(),
            group_weights={group: model.group_weights[group] for group in reversed(GROUPS)},
            fitted_on=model.fitted_on,
        )
        assert twin.model_id == model.model_id
        assert twin == model
        assert hash(twin) == hash(model)
        # An int weight is the same parameter as the float.
        ints = FeatureModel(model.mean, model.scale, {**model.group_weights, "genre": 2}, model.fitted_on)
        assert ints.model_id == model.model_id

    @pytest.mark.parametrize(
        "change",
        [
            lambda m: dataclasses.replace(m, mean=_bump(m.mean, 0)),
            lambda m: dataclasses.replace(m, mean=_bump(m.mean, 58)),
            lambda m: dataclasses.replace(m, scale=_bump(m.scale, 30)),
            lambda m: dataclasses.replace(m, group_weights={**m.group_weights, "timbre": 1.25}),
            lambda m: dataclasses.replace(m, fitted_on=m.fitted_on + 1),
        ],
        ids=["mean[0]", "mean[58]", "scale[30]", "weight", "fitted_on"],
    )
    def test_any_change_gives_another_id(
        self, model: FeatureModel, change: Callable[[FeatureModel], FeatureModel]
    ) -> None:
        changed = change(model)
        assert changed.model_id != model.model_id
        assert changed != model

    def test_immutable(self, model: FeatureModel) -> None:
        with pytest.raises(dataclasses.FrozenInstanceError):
            model.fitted_on = 3  # type: ignore[misc]
        with pytest.raises(ValueError, match="read-only"):
            model.mean[0] = 1.0
        with pytest.raises(ValueError, match="read-only"):
            model.column_weights[0] = 1.0
        with pytest.raises(TypeError):
            model.group_weights["genre"] = 3.0  # type: ignore[index]

    def test_constructor_copies_its_inputs(self, model: FeatureModel) -> None:
        mean = model.mean.copy()
        built = FeatureModel(mean, model.scale, model.group_weights, model.fitted_on)
        mean[0] = 42.0
        assert built.mean[0] == model.mean[0]
        assert built.model_id == model.model_id

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"scheme": "fm-v2"}, "unknown feature model scheme 'fm-v2'"),
            ({"mean": np.zeros(58)}, r"mean: expected 59 values, got shape \(58,\)"),
            ({"scale": np.zeros(FEATURE_DIM)}, "scale: every value must be > 0"),
            ({"scale": np.full(FEATURE_DIM, math.nan)}, "scale: contains NaN or infinity"),
            ({"fitted_on": -1}, "fitted_on: expected an integer >= 0"),
            ({"fitted_on": True}, "fitted_on"),
            ({"fitted_on": 2.0}, "fitted_on"),
        ],
    )
    def test_constructor_validates(self, model: FeatureModel, kwargs: dict[str, Any], message: str) -> None:
        with pytest.raises(FeatureModelError, match=message):
            dataclasses.replace(model, **kwargs)

    def test_pickle(self, model: FeatureModel) -> None:
        copy = pickle.loads(pickle.dumps(model))
        assert copy == model
        assert copy.model_id == model.model_id
        assert not copy.mean.flags.writeable

    def test_repr_is_short(self, model: FeatureModel) -> None:
        text = repr(model)
        assert model.model_id in text
        assert "genre=2" in text
        assert len(text) < 200


def _bump(vector: npt.NDArray[np.float64], index: int) -> npt.NDArray[np.float64]:
    """The vector with one component moved by one ulp."""
    bumped = vector.copy()
    bumped[index] = np.nextafter(bumped[index], np.inf)
    return bumped


class TestJson:
    def test_round_trip_is_exact(self, model: FeatureModel) -> None:
        mean = model.mean.copy()
        # Values whose decimal form is awkward: they must survive bit for bit too.
        mean[:5] = [0.1 + 0.2, -0.0, 5e-324, 1 / 3, -2.2250738585072014e-308]
        awkward = dataclasses.replace(model, mean=mean, group_weights={**model.group_weights, "mood": 0.7})
        for original in (model, awkward):
            text = original.to_json()
            loaded = FeatureModel.from_json(text)
            assert loaded == original
            assert loaded.model_id == original.model_id
            assert np.array_equal(loaded.mean.view(np.uint64), original.mean.view(np.uint64))
            assert np.array_equal(loaded.scale.view(np.uint64), original.scale.view(np.uint64))
            assert dict(loaded.group_weights) == dict(original.group_weights)
            assert loaded.fitted_on == original.fitted_on
            assert loaded.to_json() == text
            assert FeatureModel.from_json(text.encode()) == original

    def test_document(self, model: FeatureModel) -> None:
        data = json.loads(model.to_json())
        assert data["scheme"] == "fm-v1"
        assert data["input"] == FEATURE_MODEL_VERSION
        assert data["dim"] == FEATURE_DIM
        assert data["model_id"] == model.model_id
        assert list(data["group_weights"]) == list(GROUPS)
        assert len(data["mean"]) == len(data["scale"]) == FEATURE_DIM

    def test_model_id_is_optional(self, model: FeatureModel) -> None:
        data = json.loads(model.to_json())
        del data["model_id"]
        assert FeatureModel.from_json(json.dumps(data)).model_id == model.model_id

    @pytest.mark.parametrize(
        ("edit", "message"),
        [
            (lambda d: "{not json", "not valid JSON"),
            (lambda d: [d], "expected a JSON object, got list"),
            (lambda d: {**d, "scheme": "fm-v2"}, "unknown scheme 'fm-v2'; this code reads 'fm-v1'"),
            (lambda d: _without(d, "scheme"), "unknown scheme None"),
            (lambda d: _without(d, "mean"), r"missing keys \['mean'\]"),
            (lambda d: {**d, "comment": "x"}, r"unknown keys \['comment'\]"),
            (lambda d: {**d, "input": "clr-v2"}, "fitted on 'clr-v2' vectors; this code builds 'clr-v1'"),
            (lambda d: {**d, "dim": 58}, "dim is 58; this code builds 59"),
            (lambda d: {**d, "mean": d["mean"][:-1]}, "mean: expected 59 numbers, got 58"),
            (lambda d: {**d, "mean": {"0": 1.0}}, "mean: expected a list of 59 numbers, got dict"),
            (
                lambda d: {**d, "scale": [*d["scale"][:3], "0.1", *d["scale"][4:]]},
                r"scale\[3\]: expected a number",
            ),
            (
                lambda d: {**d, "scale": [*d["scale"][:3], None, *d["scale"][4:]]},
                r"scale\[3\]: expected a number",
            ),
            (lambda d: {**d, "mean": [True, *d["mean"][1:]]}, r"mean\[0\]: expected a number, got True"),
            (lambda d: {**d, "scale": [0.0, *d["scale"][1:]]}, "scale: every value must be > 0"),
            (lambda d: {**d, "scale": [-1.0, *d["scale"][1:]]}, "scale: every value must be > 0"),
            (lambda d: {**d, "fitted_on": -1}, "fitted_on: expected an integer >= 0, got -1"),
            (lambda d: {**d, "fitted_on": 3.5}, "fitted_on: expected an integer >= 0, got 3.5"),
            (lambda d: {**d, "group_weights": [1.0]}, "group_weights: expected an object, got list"),
            (
                lambda d: {**d, "group_weights": _without(d["group_weights"], "rhythm")},
                r"missing \['rhythm'\]",
            ),
            (lambda d: {**d, "group_weights": {**d["group_weights"], "genre": "1.5"}}, "expected a number"),
            (lambda d: {**d, "model_id": "fm-v1:0000000000000000"}, "does not match its parameters"),
            (lambda d: {**d, "mean": [d["mean"][0] + 1e-9, *d["mean"][1:]]}, "edited or corrupted"),
        ],
    )
    def test_malformed(
        self, model: FeatureModel, edit: Callable[[dict[str, Any]], object], message: str
    ) -> None:
        edited = edit(json.loads(model.to_json()))
        text = edited if isinstance(edited, str) else json.dumps(edited)
        with pytest.raises(FeatureModelError, match=message):
            FeatureModel.from_json(text)

    @pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
    def test_rejects_non_finite_tokens(self, model: FeatureModel, token: str) -> None:
        text = model.to_json().replace(repr(float(model.mean[0])), token, 1)
        with pytest.raises(FeatureModelError, match=f"{token} is not allowed"):
            FeatureModel.from_json(text)

    def test_rejects_overflowing_numbers(self, model: FeatureModel) -> None:
        text = model.to_json().replace(repr(float(model.mean[0])), "1e400", 1)
        with pytest.raises(FeatureModelError, match="mean: contains NaN or infinity"):
            FeatureModel.from_json(text)
        text = model.to_json().replace(repr(float(model.mean[0])), "1" + "0" * 400, 1)
        with pytest.raises(FeatureModelError, match="too large"):
            FeatureModel.from_json(text)

    def test_rejects_bad_bytes(self) -> None:
        with pytest.raises(FeatureModelError, match="not valid JSON"):
            FeatureModel.from_json(b"\xff\xfe{")


def _without(data: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != key}


class TestGroupAgreement:
    def test_sums_to_the_dot_product(self, corpus: Matrix, model: FeatureModel) -> None:
        out = model.transform(corpus[:20])
        for i, j in [(0, 1), (2, 3), (4, 4), (5, 19)]:
            agreement = group_agreement(out[i], out[j])
            assert list(agreement) == list(GROUPS)
            dot = float(out[i].astype(np.float64) @ out[j].astype(np.float64))
            assert math.fsum(agreement.values()) == pytest.approx(dot, abs=1e-12)
        assert math.fsum(group_agreement(out[4], out[4]).values()) == pytest.approx(1.0, abs=1e-6)

    def test_each_group_is_its_own_columns(self) -> None:
        a = np.zeros(FEATURE_DIM)
        b = np.zeros(FEATURE_DIM)
        timbre = block_columns("timbre").start
        a[timbre], b[timbre] = 0.6, 0.5
        mirex = block_columns("moods_mirex")
        a[mirex.start], b[mirex.start] = 0.8, -0.5
        agreement = group_agreement(a, b)
        assert agreement["timbre"] == pytest.approx(0.3)
        assert agreement["mood"] == pytest.approx(-0.4)
        assert all(value == 0.0 for group, value in agreement.items() if group not in {"timbre", "mood"})

    def test_validates(self) -> None:
        with pytest.raises(FeatureModelError, match=r"group_agreement b: expected shape \(59,\)"):
            group_agreement(np.zeros(FEATURE_DIM), np.zeros((1, FEATURE_DIM)))
        with pytest.raises(FeatureModelError, match="group_agreement a: contains NaN"):
            group_agreement(np.full(FEATURE_DIM, math.nan), np.zeros(FEATURE_DIM))


class TestRealDocuments:
    def test_raw_vectors_share_a_common_component(
        self, real_vectors: dict[str, npt.NDArray[np.float32]]
    ) -> None:
        distinct = np.stack([v for name, v in real_vectors.items() if name != SAME_RECORDING[1]])
        cosines = distinct.astype(np.float64) @ distinct.T.astype(np.float64)
        off_diagonal = cosines[~np.eye(len(distinct), dtype=bool)]
        # Three different recordings (different artists and genres), yet all clearly "similar".
        assert off_diagonal.min() > 0.3

    def test_transform(self, real_vectors: dict[str, npt.NDArray[np.float32]], model: FeatureModel) -> None:
        names = sorted(real_vectors)
        raw = np.stack([real_vectors[name] for name in names])
        out = model.transform(raw)
        np.testing.assert_allclose(row_norms(out), 1.0, atol=1e-6)
        same = [names.index(name) for name in SAME_RECORDING]
        assert float(out[same[0]] @ out[same[1]]) > 0.99
        agreement = group_agreement(out[0], out[1])
        assert math.fsum(agreement.values()) == pytest.approx(float(out[0] @ out[1]), abs=1e-6)

    def test_centring_on_the_documents_themselves(
        self, real_vectors: dict[str, npt.NDArray[np.float32]]
    ) -> None:
        distinct = np.stack([v for name, v in real_vectors.items() if name != SAME_RECORDING[1]])
        raw = distinct.astype(np.float64) @ distinct.T.astype(np.float64)
        out = fit(distinct, prior_count=0).transform(distinct).astype(np.float64)
        centred = out @ out.T
        mask = ~np.eye(len(distinct), dtype=bool)
        assert centred[mask].mean() < 0.0 < raw[mask].mean()
        # A tiny corpus with the default prior still gives a usable model.
        np.testing.assert_allclose(row_norms(fit(distinct).transform(distinct)), 1.0, atol=1e-6)

    def test_missing_model_in_a_real_document(
        self, real_vectors: dict[str, npt.NDArray[np.float32]], model: FeatureModel
    ) -> None:
        vector = real_vectors[SAME_RECORDING[0]].copy()
        rhythm = list(block_columns("ismir04_rhythm"))
        vector[rhythm] = 0.0
        out = model.transform(vector)
        assert not out[rhythm].any()
        assert group_agreement(out, out)["rhythm"] == 0.0
