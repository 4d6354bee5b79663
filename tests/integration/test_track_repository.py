"""`SqlTrackRepository`, the Alembic migrations and `EmbeddedPostgres` against real PostgreSQL.

Each repository test runs on the embedded server (`database_url` from tests/conftest.py) and on a
`postgres:18` testcontainer; the latter is skipped when no Docker engine answers.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from musicrec_catalog.database import EmbeddedPostgres, create_engine_for, normalise_database_url
from musicrec_catalog.errors import CatalogUnavailableError
from musicrec_catalog.migrate import downgrade_to, upgrade_to_head
from musicrec_catalog.repository import UpsertResult
from musicrec_catalog.schema import metadata
from musicrec_catalog.sql_repository import SqlTrackRepository
from musicrec_common.model import GenrePrediction, Track
from musicrec_common.text import fold_for_search, split_artist_title

pytestmark = pytest.mark.integration

POSTGRES_IMAGE = "postgres:18"


# --------------------------------------------------------------------------- backends


@functools.cache
def _docker_unavailable_reason() -> str | None:
    """Why no Docker engine can be used, or None. Costs at most ~1 s when nothing answers."""
    host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    try:
        if host.startswith("unix://"):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(1.0)
                sock.connect(host.removeprefix("unix://"))
                sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
                reply = sock.recv(64)
            if not reply.startswith(b"HTTP/1.") or b" 200 " not in reply:
                return f"the Docker engine at {host} did not answer /_ping with 200: {reply!r}"
        elif host.startswith("tcp://"):
            parts = urlsplit(host)
            with socket.create_connection((parts.hostname or "localhost", parts.port or 2375), timeout=1.0):
                pass
    except OSError as err:
        return f"no Docker engine answers at {host}: {err}"
    return None


@pytest.fixture(scope="session")
def container_server_url() -> Iterator[str]:
    """A PostgreSQL 18 testcontainer for the session (skipped without Docker)."""
    reason = _docker_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from testcontainers.community.postgres import PostgresContainer

        container = PostgresContainer(POSTGRES_IMAGE, driver="psycopg")
        container.start()
    try:
        yield str(container.get_connection_url())
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            container.stop()


BACKENDS = [
    pytest.param("embedded", id="embedded"),
    pytest.param("postgres-container", id="postgres-container", marks=pytest.mark.docker),
]


@pytest.fixture(params=BACKENDS)
def catalog_url(request: pytest.FixtureRequest, postgres_database_factory: Any) -> Iterator[str]:
    """A fresh, migrated catalog database on the backend under test."""
    if request.param == "embedded":
        yield request.getfixturevalue("database_url")
        return
    server_url = request.getfixturevalue("container_server_url")
    with postgres_database_factory(server_url) as url:
        yield url


@pytest.fixture
def engine(catalog_url: str) -> Iterator[sa.Engine]:
    eng = create_engine_for(catalog_url)
    yield eng
    eng.dispose()


@pytest.fixture
def repo(engine: sa.Engine) -> SqlTrackRepository:
    return SqlTrackRepository(engine)


# --------------------------------------------------------------------------- helpers


def new_mbid() -> str:
    return str(uuid.uuid4())


def make_track(
    mbid: str | None = None,
    *,
    submission: int = 0,
    title: str | None = "Song",
    artist: str | None = "Artist",
    album: str | None = None,
    release_date: dt.date | None = None,
    year: int | None = None,
    rosamerica: GenrePrediction | None = None,
    dortmund: GenrePrediction | None = None,
    tzanetakis: GenrePrediction | None = None,
    is_placeholder_title: bool = False,
) -> Track:
    return Track(
        mbid=mbid or new_mbid(),
        submission=submission,
        title=title,
        artist=artist,
        album=album,
        release_date=release_date,
        year=year,
        rosamerica=rosamerica,
        dortmund=dortmund,
        tzanetakis=tzanetakis,
        is_placeholder_title=is_placeholder_title,
    )


def stored(repo: SqlTrackRepository, mbid: str) -> Track:
    (track,) = repo.get_many([mbid])
    return track


# --------------------------------------------------------------------------- round trip


def test_round_trip_keeps_every_field(repo: SqlTrackRepository, engine: sa.Engine) -> None:
    full = make_track(
        submission=2_000_000_000,
        title="Ace of Spades",
        artist="Motörhead",
        album="Ace of Spades (Deluxe)",
        release_date=dt.date(1980, 11, 8),
        year=1980,
        rosamerica=GenrePrediction("roc", 0.873),
        dortmund=GenrePrediction("rock", 0.5),
        tzanetakis=GenrePrediction("met", 0.25),
    )
    non_latin = make_track(
        submission=7,
        title="夜に駆ける 🌙",
        artist="YOASOBI / Пётр Ильич Чайковский",
        album="ガラスの街 — Ελληνικά",
        year=2019,
        dortmund=GenrePrediction("électronique", 0.125),
    )
    sparse = make_track(submission=0, title=None, artist=None)
    placeholder = make_track(submission=3, title="Track 01", artist="Nobody", is_placeholder_title=True)
    early = make_track(submission=1, release_date=dt.date(1, 1, 1), year=1, title="Ancient")
    originals = [full, non_latin, sparse, placeholder, early]

    assert repo.upsert(originals) == UpsertResult(inserted=5, updated=0, unchanged=0)

    assert repo.get_many([t.mbid for t in originals]) == originals
    assert repo.count() == 5
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT mbid::text, title_key || '|' || artist_key FROM tracks"))
        keys = {mbid: key for mbid, key in rows}
    assert keys[full.mbid] == "ace of spades|motorhead"
    assert (
        keys[non_latin.mbid]
        == f"{fold_for_search('夜に駆ける 🌙')}|{fold_for_search(non_latin.artist or '')}"
    )
    assert keys[sparse.mbid] == "|"


def test_probabilities_are_stored_as_float4(repo: SqlTrackRepository) -> None:
    track = make_track(rosamerica=GenrePrediction("cla", 0.558489561081))
    repo.upsert([track])
    got = stored(repo, track.mbid).rosamerica
    assert got is not None
    assert got.label == "cla"
    assert got.probability == pytest.approx(0.558489561081, rel=1e-6)


def test_upper_case_mbid_is_stored_canonically(repo: SqlTrackRepository) -> None:
    mbid = new_mbid()
    repo.upsert([make_track(mbid.upper())])
    assert stored(repo, mbid).mbid == mbid


def test_malformed_mbid_is_rejected_and_nothing_is_stored(repo: SqlTrackRepository) -> None:
    with pytest.raises(ValueError, match="not-a-uuid"):
        repo.upsert([make_track(), make_track("not-a-uuid")])
    assert repo.count() == 0


# --------------------------------------------------------------------------- preference & counts

# Same recording, two submissions: B is more complete (4 vs 2) but arrived later in the dump.
MBID_AB = "6b1c1f1e-9d1a-4c8e-8f5e-3c3f8f0a1b2c"
SUB_A = make_track(MBID_AB, submission=5, title="Song", artist="Artist")
SUB_B = make_track(
    MBID_AB,
    submission=9,
    title="Song",
    artist="Artist",
    album="LP",
    year=1999,
    dortmund=GenrePrediction("pop", 0.5),
)


@pytest.mark.parametrize(
    ("first", "second", "second_result"),
    [
        pytest.param(SUB_A, SUB_B, UpsertResult(0, 1, 0), id="A-then-B"),
        pytest.param(SUB_B, SUB_A, UpsertResult(0, 0, 1), id="B-then-A"),
    ],
)
def test_preferred_submission_wins_in_either_order(
    repo: SqlTrackRepository, first: Track, second: Track, second_result: UpsertResult
) -> None:
    assert repo.upsert([first]) == UpsertResult(1, 0, 0)
    assert repo.upsert([second]) == second_result
    assert stored(repo, MBID_AB) == SUB_B
    assert repo.count() == 1


@pytest.mark.parametrize("batch", [[SUB_A, SUB_B], [SUB_B, SUB_A]], ids=["AB", "BA"])
def test_duplicates_inside_one_batch_keep_the_preferred(repo: SqlTrackRepository, batch: list[Track]) -> None:
    assert repo.upsert(batch) == UpsertResult(inserted=1, updated=0, unchanged=1)
    assert stored(repo, MBID_AB) == SUB_B


def test_equal_completeness_prefers_the_lower_submission(repo: SqlTrackRepository) -> None:
    mbid = new_mbid()
    low = make_track(mbid, submission=3, title="Low")
    high = make_track(mbid, submission=4, title="High")
    repo.upsert([high])
    assert repo.upsert([low]) == UpsertResult(0, 1, 0)
    assert repo.upsert([high]) == UpsertResult(0, 0, 1)
    assert stored(repo, mbid) == low


def test_placeholder_title_counts_as_missing(repo: SqlTrackRepository) -> None:
    mbid = new_mbid()
    placeholder = make_track(mbid, submission=1, title="Track 01", is_placeholder_title=True, album="X")
    real = make_track(mbid, submission=2, title="Real Name", album="X")
    repo.upsert([placeholder])
    assert repo.upsert([real]) == UpsertResult(0, 1, 0)
    assert stored(repo, mbid) == real


def test_re_upsert_is_idempotent_and_counts_are_exact(repo: SqlTrackRepository) -> None:
    batch = [make_track(submission=i, title=f"Song {i}") for i in range(50)]
    assert repo.upsert(batch) == UpsertResult(inserted=50, updated=0, unchanged=0)
    assert repo.upsert(batch) == UpsertResult(inserted=0, updated=0, unchanged=50)
    assert repo.upsert(list(reversed(batch))) == UpsertResult(inserted=0, updated=0, unchanged=50)
    assert repo.count() == 50

    better = make_track(batch[0].mbid, submission=0, title="Song 0", album="Now with album")
    worse = make_track(batch[1].mbid, submission=99, title="Song 1")
    new = make_track(submission=100)
    new_worse_duplicate = make_track(new.mbid, submission=101)
    result = repo.upsert([better, worse, new, new_worse_duplicate])
    assert result == UpsertResult(inserted=1, updated=1, unchanged=2)
    assert repo.count() == 51
    assert stored(repo, batch[0].mbid) == better
    assert stored(repo, batch[1].mbid) == batch[1]
    assert repo.upsert([]) == UpsertResult(0, 0, 0)


@st.composite
def _submissions(draw: st.DrawFn) -> list[Track]:
    numbers = draw(st.lists(st.integers(0, 10_000), min_size=1, max_size=6, unique=True))
    mbid = new_mbid()
    return [
        make_track(
            mbid,
            submission=n,
            title=draw(st.sampled_from([None, "Title"])),
            artist=draw(st.sampled_from([None, "Artist"])),
            album=draw(st.sampled_from([None, "Album"])),
            year=draw(st.sampled_from([None, 2001])),
            release_date=draw(st.sampled_from([None, dt.date(2001, 2, 3)])),
            is_placeholder_title=draw(st.booleans()),
        )
        for n in numbers
    ]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(submissions=_submissions(), data=st.data())
def test_stored_row_does_not_depend_on_arrival_order_or_batching(
    repo: SqlTrackRepository, submissions: list[Track], data: st.DataObject
) -> None:
    # Each example uses a fresh MBID, so examples do not see each other's rows.
    arrival = data.draw(st.permutations(submissions))
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(arrival) - 1)), max_size=len(arrival))))
    batches = [arrival[i:j] for i, j in zip([0, *cuts], [*cuts, len(arrival)], strict=True) if arrival[i:j]]
    results = [repo.upsert(batch) for batch in batches]

    assert stored(repo, submissions[0].mbid) == max(submissions, key=Track.preference_key)
    assert sum(r.inserted for r in results) == 1
    assert sum(r.inserted + r.updated + r.unchanged for r in results) == len(submissions)


def test_concurrent_overlapping_upserts_converge_without_deadlock(repo: SqlTrackRepository) -> None:
    mbids = [new_mbid() for _ in range(400)]
    worse = [make_track(m, submission=10, title="Worse") for m in mbids]
    better = [make_track(m, submission=1, title="Better") for m in mbids]

    def write(batch: list[Track]) -> list[UpsertResult]:
        return [repo.upsert(batch[i : i + 50]) for i in range(0, len(batch), 50)]

    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = [pool.submit(write, worse), pool.submit(write, list(reversed(better)))]
        results = [r for run in runs for r in run.result()]

    assert repo.get_many(mbids) == better
    assert sum(r.inserted for r in results) == len(mbids)
    assert sum(r.inserted + r.updated + r.unchanged for r in results) == 2 * len(mbids)


# --------------------------------------------------------------------------- get_many


def test_get_many_keeps_the_asked_order_and_drops_unknowns(repo: SqlTrackRepository) -> None:
    a, b, c = (make_track(title=name) for name in "abc")
    repo.upsert([a, b, c])
    asked = [c.mbid, new_mbid(), a.mbid, "garbage", b.mbid.upper(), c.mbid]
    assert repo.get_many(asked) == [c, a, b, c]
    assert repo.get_many([]) == []
    assert repo.get_many([new_mbid()]) == []


# --------------------------------------------------------------------------- search

M_EXACT = make_track(
    "00000000-0000-4000-8000-000000000001",
    title="Ace of Spades",
    artist="Motörhead",
    album="Ace of Spades",
    year=1980,
    release_date=dt.date(1980, 11, 8),
)
M_EXACT_SPARSE = make_track(
    "00000000-0000-4000-8000-000000000002", title="ACE  OF SPADES", artist="MOTORHEAD"
)
M_TITLE_PREFIX = make_track(
    "00000000-0000-4000-8000-000000000003", title="Ace of Spades (Live)", artist="Motörhead", year=1981
)
M_ARTIST_PREFIX = make_track(
    "00000000-0000-4000-8000-000000000004", title="Ace of Spades", artist="Motörhead Tribute Band"
)
M_BOTH_PREFIX = make_track(
    "00000000-0000-4000-8000-000000000005", title="Ace of Spades (Remix)", artist="Motörhead Tribute Band"
)
M_PLACEHOLDER = make_track(
    "00000000-0000-4000-8000-000000000006",
    title="Ace of Spades",
    artist="Motörhead",
    album="Bootleg",
    year=1980,
    release_date=dt.date(1980, 1, 1),
    is_placeholder_title=True,
)
M_OTHER = make_track("00000000-0000-4000-8000-000000000007", title="Spades", artist="Ace")
M_PERCENT = make_track("00000000-0000-4000-8000-000000000008", title="100% Pure", artist="Wildcards")
M_DIGITS = make_track("00000000-0000-4000-8000-000000000009", title="1000 Pure", artist="Wildcards")
M_UNDERSCORE = make_track("00000000-0000-4000-8000-00000000000a", title="a_b", artist="Wildcards")
M_ANY_CHAR = make_track("00000000-0000-4000-8000-00000000000b", title="axb", artist="Wildcards")

SEARCH_TRACKS = [
    M_EXACT,
    M_EXACT_SPARSE,
    M_TITLE_PREFIX,
    M_ARTIST_PREFIX,
    M_BOTH_PREFIX,
    M_PLACEHOLDER,
    M_OTHER,
    M_PERCENT,
    M_DIGITS,
    M_UNDERSCORE,
    M_ANY_CHAR,
]


@pytest.fixture
def search_repo(repo: SqlTrackRepository) -> SqlTrackRepository:
    repo.upsert(list(reversed(SEARCH_TRACKS)))
    return repo


def test_search_is_case_and_accent_insensitive(search_repo: SqlTrackRepository) -> None:
    artist, title = split_artist_title("motorhead - ace of spades")
    found = search_repo.search(artist=artist, title=title, limit=2)
    assert found == [M_EXACT, M_EXACT_SPARSE]
    assert found[0].artist == "Motörhead"
    assert search_repo.search(artist="MOTÖRHEAD", title="ÀCE OF SPÂDES", limit=2) == found


def test_search_with_both_ranks_exact_then_title_exact_then_artist_exact_then_prefixes(
    search_repo: SqlTrackRepository,
) -> None:
    assert search_repo.search(artist="motorhead", title="ace of spades", limit=10) == [
        M_EXACT,  # both exact, completeness 5
        M_EXACT_SPARSE,  # both exact, completeness 2
        M_ARTIST_PREFIX,  # title exact, artist prefix
        M_TITLE_PREFIX,  # artist exact, title prefix
        M_BOTH_PREFIX,  # both prefix
        M_PLACEHOLDER,  # placeholders last even when exact
    ]


def test_search_by_title_only(search_repo: SqlTrackRepository) -> None:
    assert search_repo.search(artist=None, title="Ace of Spades", limit=10) == [
        M_EXACT,
        M_EXACT_SPARSE,
        M_ARTIST_PREFIX,
        M_TITLE_PREFIX,
        M_BOTH_PREFIX,
        M_PLACEHOLDER,
    ]
    assert search_repo.search(artist=None, title="ace of spades (l", limit=10) == [M_TITLE_PREFIX]


def test_search_by_artist_only(search_repo: SqlTrackRepository) -> None:
    assert search_repo.search(artist="Motorhead", title=None, limit=10) == [
        M_EXACT,  # exact, completeness 5
        M_TITLE_PREFIX,  # exact, completeness 3
        M_EXACT_SPARSE,  # exact, completeness 2
        M_ARTIST_PREFIX,  # prefix, completeness 2, lower mbid
        M_BOTH_PREFIX,  # prefix, completeness 2
        M_PLACEHOLDER,
    ]
    assert search_repo.search(artist="motorhead", title=None, limit=2) == [M_EXACT, M_TITLE_PREFIX]
    assert search_repo.search(artist="ace", title=None, limit=10) == [M_OTHER]


def test_search_treats_like_wildcards_literally(search_repo: SqlTrackRepository) -> None:
    assert search_repo.search(artist=None, title="100%", limit=10) == [M_PERCENT]
    assert search_repo.search(artist=None, title="a_", limit=10) == [M_UNDERSCORE]
    assert search_repo.search(artist="wildcards", title="1000", limit=10) == [M_DIGITS]


def test_search_without_criteria_or_limit_finds_nothing(search_repo: SqlTrackRepository) -> None:
    assert search_repo.search(artist=None, title=None, limit=10) == []
    assert search_repo.search(artist="  ", title="", limit=10) == []
    assert search_repo.search(artist="motorhead", title=None, limit=0) == []
    assert search_repo.search(artist="nobody at all", title=None, limit=10) == []


# --------------------------------------------------------------------------- migrations


def test_migrations_match_the_schema_module(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []
    # Autogenerate does not compare CHECK constraints or constraint names; do it here.
    table = metadata.tables["tracks"]
    inspector = sa.inspect(engine)
    declared_checks = {c.name for c in table.constraints if isinstance(c, sa.CheckConstraint)}
    assert {c["name"] for c in inspector.get_check_constraints("tracks")} == declared_checks
    assert declared_checks == {
        "ck_tracks_completeness_range",
        "ck_tracks_rosamerica_pair",
        "ck_tracks_dortmund_pair",
        "ck_tracks_tzanetakis_pair",
    }
    assert inspector.get_pk_constraint("tracks")["name"] == table.primary_key.name == "pk_tracks"
    assert {i["name"] for i in inspector.get_indexes("tracks")} == {i.name for i in table.indexes}


def test_upgrading_twice_is_a_no_op(catalog_url: str, repo: SqlTrackRepository, engine: sa.Engine) -> None:
    track = make_track()
    repo.upsert([track])
    upgrade_to_head(catalog_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all() == ["0001"]
    assert repo.get_many([track.mbid]) == [track]


def test_downgrade_to_base_then_upgrade(
    catalog_url: str, repo: SqlTrackRepository, engine: sa.Engine
) -> None:
    repo.upsert([make_track()])
    downgrade_to(catalog_url, "base")
    engine.dispose()
    assert not sa.inspect(engine).has_table("tracks")
    upgrade_to_head(catalog_url)
    assert repo.count() == 0
    assert repo.upsert([make_track()]) == UpsertResult(1, 0, 0)


def test_search_indexes_serve_equality_and_prefix(search_repo: SqlTrackRepository, engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("SET LOCAL enable_seqscan = off"))
        for predicate in (
            "artist_key = 'x'",
            "artist_key LIKE 'x%'",
            "title_key LIKE 'x%'",
            "title_key = 'x'",
        ):
            plan = "\n".join(
                conn.execute(sa.text(f"EXPLAIN SELECT * FROM tracks WHERE {predicate}")).scalars()
            )
            assert "ix_tracks_" in plan, plan
            assert "Index Cond" in plan, plan


# --------------------------------------------------------------------------- unavailable database


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize(
    "url",
    [
        pytest.param(f"postgresql://postgres@127.0.0.1:{_closed_port()}/musicrec", id="closed-port"),
        pytest.param(f"postgres://postgres@/musicrec?host=/nonexistent/{uuid.uuid4().hex}", id="no-socket"),
    ],
)
def test_unreachable_server_raises_catalog_unavailable(url: str) -> None:
    engine = create_engine_for(url)
    repo = SqlTrackRepository(engine)
    try:
        with pytest.raises(CatalogUnavailableError):
            repo.upsert([make_track()])
        with pytest.raises(CatalogUnavailableError):
            repo.get_many([new_mbid()])
        with pytest.raises(CatalogUnavailableError):
            repo.search(artist="a", title=None, limit=1)
        with pytest.raises(CatalogUnavailableError, match="unavailable"):
            repo.count()
    finally:
        engine.dispose()


@pytest.fixture
def pg_scratch_dir() -> Iterator[Path]:
    """A directory for a private embedded server, outside pytest's 0700 basetemp (see conftest)."""
    path = Path(tempfile.mkdtemp(prefix="musicrec-test-pg-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_embedded_server_stop_makes_catalog_unavailable_and_restart_keeps_data(pg_scratch_dir: Path) -> None:
    server = EmbeddedPostgres(pg_scratch_dir / "data")
    url = server.start()
    assert normalise_database_url(url).database == "musicrec"
    assert server.start() == url  # idempotent
    upgrade_to_head(url)
    engine = create_engine_for(url)
    repo = SqlTrackRepository(engine)
    try:
        track = make_track()
        repo.upsert([track])
        server.stop()
        with pytest.raises(CatalogUnavailableError):
            repo.count()
        assert server.start() == url
        assert repo.get_many([track.mbid]) == [track]  # the pool re-connects (pre-ping)
    finally:
        engine.dispose()
        server.stop()


def test_a_server_left_by_a_killed_process_is_stopped_by_the_next_one(pg_scratch_dir: Path) -> None:
    """kill -9 of a process running the embedded server leaves the server up; the next process
    uses it, and stopping that one stops the server instead of leaving it running for good."""
    data = pg_scratch_dir / "data"
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from musicrec_catalog.database import EmbeddedPostgres\n"
        "EmbeddedPostgres(Path(sys.argv[1])).start()\n"
        "print('started', flush=True)\n"
        "time.sleep(600)\n"
    )
    command = [sys.executable, "-c", script, str(data)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as first:
        try:
            assert first.stdout is not None
            assert first.stdout.readline().strip() == "started"
        finally:
            first.kill()
    postmaster = int((data / "postgres" / "postmaster.pid").read_text().split()[0])
    os.kill(postmaster, 0)  # still running without its process
    try:
        server = EmbeddedPostgres(data)
        url = server.start()
        assert int((data / "postgres" / "postmaster.pid").read_text().split()[0]) == postmaster  # reused
        upgrade_to_head(url)
        server.stop()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _alive(postmaster):
            time.sleep(0.1)
        assert not _alive(postmaster), "the server is still running after its last user stopped"
    finally:
        if _alive(postmaster):
            os.kill(postmaster, signal.SIGINT)  # fast shutdown: do not leave it to the next tests


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]


def test_embedded_startup_failure_names_the_log(pg_scratch_dir: Path) -> None:
    pgdata = pg_scratch_dir / "data" / "postgres"
    pgdata.mkdir(parents=True)
    (pgdata / "PG_VERSION").write_text("not-a-version\n")  # looks initialised, cannot start
    server = EmbeddedPostgres(pg_scratch_dir / "data")
    with pytest.raises(RuntimeError, match=re.escape(str(pgdata / "log"))):
        server.start()


# --------------------------------------------------------------------------- engine URLs


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:p@db.example:5433/musicrec",
        "postgres://u:p@db.example:5433/musicrec",
        "postgresql+psycopg://u:p@db.example:5433/musicrec",
    ],
)
def test_create_engine_for_normalises_to_psycopg3(url: str) -> None:
    engine = create_engine_for(url)
    try:
        assert engine.url.drivername == "postgresql+psycopg"
        assert engine.url.database == "musicrec"
        assert engine.url.port == 5433
        assert engine.dialect.driver == "psycopg"
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "url", ["mysql://u:secret@h/db", "postgresql+psycopg2://u:secret@h/db", "sqlite:///x.db", "not a url"]
)
def test_create_engine_for_rejects_other_schemes(url: str) -> None:
    with pytest.raises(ValueError, match="postgresql://") as info:
        create_engine_for(url)
    assert "secret" not in str(info.value)
