"""`IndexConfig`: how the vector index is built and searched, the same for both engines.

The build settings (`hnsw_m`, `hnsw_ef_construct`, `quantization`, `vectors_on_disk`) are fixed
when the index is created and kept with it; reopening an index with other build settings keeps the
stored ones. `hnsw_ef` applies to every search and can change at any time. docs/performance.md
explains the defaults with the measurements that chose them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from musicrec_vectorstore.port import VectorStoreError

__all__ = [
    "DEFAULT_INDEX_CONFIG",
    "FULL_SCAN_THRESHOLD_KB",
    "INT8_QUANTILE",
    "RESCORE_OVERSAMPLING",
    "IndexConfig",
    "Quantization",
]

Quantization = Literal["none", "int8"]

# int8 quantization, both engines: the range kept is the 0.99 quantile of the values (outliers are
# clipped), and a quantized search rescores twice the asked number of candidates with the full vectors.
INT8_QUANTILE = 0.99
RESCORE_OVERSAMPLING = 2.0

# A filtered search whose matching points hold fewer vector bytes than this scores them all exactly
# instead of walking the graph (both engines; fixed when the index is built). 20,000 KB is ~87k of
# our 59-d vectors: every genre-decade pair of a 1M-track corpus (the largest ~66k points) is then
# scanned, where Qdrant's default (10,000 KB, ~43k) sent the largest pairs through a slower ACORN
# walk (1M, engine alone: genre + decade p99 90 -> 28 ms; docs/performance.md).
FULL_SCAN_THRESHOLD_KB = 20_000


@dataclass(frozen=True, slots=True)
class IndexConfig:
    """HNSW graph degree and build width, search width, and the memory-saving options.

    - `hnsw_m`: links per point in the graph (more: better recall, slower build, more memory);
    - `hnsw_ef_construct`: candidates kept while building (more: better graph, slower build);
    - `hnsw_ef`: candidates kept while searching (more: better recall, slower search);
    - `acorn`: filtered searches walk two hops of the graph where a filter removed the direct
      neighbours (Qdrant's ACORN), instead of losing the trail; the engine applies it only to
      selective filters;
    - `quantization`: "int8" keeps a 1-byte-per-dimension copy of the vectors in RAM and searches
      it, then rescores the best candidates with the full vectors (4x less RAM for the scan);
    - `vectors_on_disk`: full vectors memory-mapped from disk instead of held in RAM (with int8
      quantization only the rescoring reads them).
    """

    hnsw_m: int = 16
    hnsw_ef_construct: int = 100
    hnsw_ef: int = 1600
    acorn: bool = True
    quantization: Quantization = "int8"
    vectors_on_disk: bool = False

    def __post_init__(self) -> None:
        if not 4 <= self.hnsw_m <= 128:
            raise VectorStoreError(f"hnsw_m must be in 4..128, not {self.hnsw_m}")
        if not 4 <= self.hnsw_ef_construct <= 4096:
            raise VectorStoreError(f"hnsw_ef_construct must be in 4..4096, not {self.hnsw_ef_construct}")
        if not 1 <= self.hnsw_ef <= 4096:
            raise VectorStoreError(f"hnsw_ef must be in 1..4096, not {self.hnsw_ef}")
        if self.quantization not in ("none", "int8"):
            raise VectorStoreError(f'quantization must be "none" or "int8", not {self.quantization!r}')

    @property
    def quantized(self) -> bool:
        return self.quantization == "int8"


DEFAULT_INDEX_CONFIG = IndexConfig()
