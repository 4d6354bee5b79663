"""MUSICREC_INDEX_* settings become the vector index's IndexConfig."""

from __future__ import annotations

import pytest

from musicrec_cli.stack import IndexSettings
from musicrec_vectorstore import DEFAULT_INDEX_CONFIG, IndexConfig, VectorStoreError


def test_no_variables_give_the_default_config(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HNSW_M", "HNSW_EF_CONSTRUCT", "HNSW_EF", "ACORN", "QUANTIZATION", "VECTORS_ON_DISK"):
        monkeypatch.delenv(f"MUSICREC_INDEX_{name}", raising=False)
    assert IndexSettings().config() == DEFAULT_INDEX_CONFIG


def test_variables_set_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUSICREC_INDEX_HNSW_M", "24")
    monkeypatch.setenv("MUSICREC_INDEX_HNSW_EF", "128")
    monkeypatch.setenv("MUSICREC_INDEX_ACORN", "false")
    monkeypatch.setenv("MUSICREC_INDEX_QUANTIZATION", "int8")
    monkeypatch.setenv("MUSICREC_INDEX_VECTORS_ON_DISK", "true")
    config = IndexSettings().config()
    assert config == IndexConfig(
        hnsw_m=24,
        hnsw_ef_construct=DEFAULT_INDEX_CONFIG.hnsw_ef_construct,
        hnsw_ef=128,
        acorn=False,
        quantization="int8",
        vectors_on_disk=True,
    )
    assert config.quantized


def test_an_impossible_value_is_refused_naming_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUSICREC_INDEX_HNSW_EF", "0")
    with pytest.raises(VectorStoreError, match="hnsw_ef"):
        IndexSettings().config()
