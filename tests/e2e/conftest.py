"""End-to-end fixtures: a generated corpus and the three services on loopback port 0."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
import pytest_asyncio

from musicrec.ingestor.v1 import ingestor_pb2
from musicrec_catalog.settings import CatalogSettings
from musicrec_cli.clients import ingest
from musicrec_cli.stack import SERVICES, ServiceStack, StackSettings
from musicrec_common.corpus import CorpusSummary, generate_corpus
from musicrec_ingestor.settings import IngestorSettings
from musicrec_recommender.settings import RecommenderSettings

E2E_TRACKS = 3_000


def stack_settings(data_dir: Path, database_url: str) -> StackSettings:
    return StackSettings(
        data_dir=data_dir,
        catalog=CatalogSettings(host="127.0.0.1", port=0, database_url=database_url, shutdown_grace=1.0),
        ingestor=IngestorSettings(host="127.0.0.1", port=0, shutdown_grace=1.0),
        recommender=RecommenderSettings(host="127.0.0.1", port=0, shutdown_grace=1.0, catalog_timeout=3.0),
    )


@pytest.fixture(scope="session")
def make_stack_settings() -> Callable[[Path, str], StackSettings]:
    return stack_settings


@pytest.fixture(scope="session")
def session_database_url(
    postgres_server_url: str, postgres_database_factory: Callable[..., AbstractContextManager[str]]
) -> Iterator[str]:
    """One catalog database for the e2e session (the stack migrates it itself at start)."""
    with postgres_database_factory(postgres_server_url, migrate=False) as url:
        yield url


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, CorpusSummary]:
    out = tmp_path_factory.mktemp("corpus")
    return out, generate_corpus(out, tracks=E2E_TRACKS, seed=7)


@pytest_asyncio.fixture(scope="session")
async def stack(
    tmp_path_factory: pytest.TempPathFactory, session_database_url: str
) -> AsyncIterator[ServiceStack]:
    settings = stack_settings(tmp_path_factory.mktemp("data"), session_database_url)
    async with ServiceStack(settings, SERVICES) as running:
        yield running


@pytest_asyncio.fixture(scope="session")
async def ingested(stack: ServiceStack, corpus: tuple[Path, CorpusSummary]) -> ingestor_pb2.IngestReport:
    return await ingest(stack.addresses["ingestor"], [corpus[0]], show_progress=False)
