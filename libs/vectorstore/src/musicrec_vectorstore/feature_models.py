"""The feature model an index was built with, kept in the index's metadata.

Vectors are only comparable when made by the same feature model (musicrec_common.feature_model), so
the model is stored with the index when its first vectors are written and read back by everyone who
writes or queries it. An index that holds points but no model was built by an older musicrec.
"""

from __future__ import annotations

import math
import time

from musicrec_common.errors import FailedPreconditionError
from musicrec_common.feature_model import FeatureModel, FeatureModelError
from musicrec_vectorstore.payload import PAYLOAD_VERSION, PAYLOAD_VERSION_KEY
from musicrec_vectorstore.port import VectorStore

__all__ = [
    "FEATURE_MODEL_KEY",
    "FeatureModelRef",
    "check_payload_version",
    "load_feature_model",
    "save_feature_model",
]

FEATURE_MODEL_KEY = "feature_model"


def load_feature_model(store: VectorStore) -> FeatureModel | None:
    """The index's feature model; None for an empty index that has none yet.

    Raises FailedPreconditionError for an index with points but no model, or an unreadable model.
    """
    text = store.get_metadata(FEATURE_MODEL_KEY)
    if text is None:
        if store.count() > 0:
            raise FailedPreconditionError(
                "the vector index holds points but no feature model (it was built by an older "
                "musicrec); ingest again into a fresh --data-dir or collection"
            )
        return None
    check_payload_version(store)
    try:
        return FeatureModel.from_json(text)
    except FeatureModelError as exc:
        raise FailedPreconditionError(f"the vector index's feature model cannot be read: {exc}") from exc


def check_payload_version(store: VectorStore) -> None:
    """Refuse an index whose points were written with another payload layout (payload.py): its
    points lack keys that filters use, so they would silently never match."""
    found = store.get_metadata(PAYLOAD_VERSION_KEY)
    if found != str(PAYLOAD_VERSION):
        written = (
            f"payload version {found}" if found else f"a payload layout before version {PAYLOAD_VERSION}"
        )
        raise FailedPreconditionError(
            f"the vector index's points were written with {written}, and this musicrec reads version "
            f"{PAYLOAD_VERSION}; ingest again into a fresh --data-dir or collection"
        )


def save_feature_model(store: VectorStore, model: FeatureModel) -> None:
    """Record `model` as the index's feature model, with the payload version its points are
    written in; refuses to replace a different model."""
    current = store.get_metadata(FEATURE_MODEL_KEY)
    if current is not None and FeatureModel.from_json(current).model_id != model.model_id:
        raise FailedPreconditionError(
            "the vector index was built with another feature model; ingest into a fresh --data-dir"
        )
    if current is None:
        store.set_metadata(PAYLOAD_VERSION_KEY, str(PAYLOAD_VERSION))
    else:
        check_payload_version(store)
    store.set_metadata(FEATURE_MODEL_KEY, model.to_json())


class FeatureModelRef:
    """The id of an index's feature model for the request path: read from the store at most every
    `max_age` seconds (a server store answers over the network), parsed only when it changed."""

    def __init__(self, store: VectorStore, max_age: float = 5.0) -> None:
        self._store = store
        self._max_age = max_age
        self._read_at = -math.inf
        self._text: str | None = None
        self._id = ""

    def fresh(self) -> str | None:
        """The model id when it was read less than `max_age` ago (no I/O), else None."""
        if self._id and time.monotonic() - self._read_at < self._max_age:
            return self._id
        return None

    def current(self) -> str:
        """The model id, or "" while the index has none."""
        known = self.fresh()
        if known is not None:
            return known
        now = time.monotonic()
        text = self._store.get_metadata(FEATURE_MODEL_KEY)
        if text != self._text:
            if text is not None:
                check_payload_version(self._store)
            try:
                self._id = "" if text is None else FeatureModel.from_json(text).model_id
            except FeatureModelError as exc:
                raise FailedPreconditionError(
                    f"the vector index's feature model cannot be read: {exc}"
                ) from exc
            self._text = text
        self._read_at = now
        return self._id
