"""The services as separate processes, started with the same command and settings compose uses."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from musicrec.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from musicrec_cli.clients import check_health

pytestmark = [pytest.mark.e2e]

READY = re.compile(r"musicrec ready: catalog=(?P<address>\S+)")
MBID = "564ccd5c-c4d3-4752-9abf-c33bb085d6a5"


async def test_serve_catalog_process_serves_then_drains_on_sigterm(database_url: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "MUSICREC_CATALOG_DATABASE_URL": database_url,
        "MUSICREC_DATA_DIR": str(tmp_path),
        "MUSICREC_LOG_FORMAT": "json",
    }
    # The compose service runs `musicrec serve catalog`; only the port differs (0 = any free port).
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "musicrec_cli.main",
        "serve",
        "catalog",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), timeout=60)).decode()
        match = READY.search(line)
        assert match, f"no ready line, got {line!r}"
        address = match["address"]
        assert await check_health(address) == "SERVING"
        async with grpc.aio.insecure_channel(address) as channel:
            stub = catalog_pb2_grpc.CatalogServiceStub(channel)

            async def batches() -> AsyncIterator[catalog_pb2.UpsertTracksRequest]:
                yield catalog_pb2.UpsertTracksRequest(
                    tracks=[
                        catalog_pb2.Track(
                            mbid=MBID, title="The Lost Art of Conversation", artist="Pink Floyd"
                        )
                    ]
                )

            counts = await stub.UpsertTracks(batches(), timeout=10)
            assert (counts.received, counts.inserted) == (1, 1)
            found = await stub.SearchTracks(
                catalog_pb2.SearchTracksRequest(query="pink floyd - the lost art"), timeout=5
            )
            assert [t.mbid for t in found.tracks] == [MBID]
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), timeout=30) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
