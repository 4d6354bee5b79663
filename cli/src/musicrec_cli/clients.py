"""Client-side commands: ingest through the ingestor, recommend through the recommender, health."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import grpc
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc

from musicrec.ingestor.v1 import ingestor_pb2, ingestor_pb2_grpc
from musicrec.recommender.v1 import recommender_pb2, recommender_pb2_grpc
from musicrec_common.grpc_client import create_channel
from musicrec_common.progress import ProgressPrinter

__all__ = ["check_health", "ingest", "recommend", "report_as_json", "response_as_json"]

CLASSIFIERS = {
    "rosamerica": recommender_pb2.GENRE_CLASSIFIER_ROSAMERICA,
    "dortmund": recommender_pb2.GENRE_CLASSIFIER_DORTMUND,
    "tzanetakis": recommender_pb2.GENRE_CLASSIFIER_TZANETAKIS,
}


def response_as_json(response: recommender_pb2.RecommendResponse) -> str:
    return json_format.MessageToJson(
        response, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def report_as_json(report: ingestor_pb2.IngestReport) -> str:
    return json_format.MessageToJson(
        report, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


async def ingest(
    address: str, paths: Sequence[Path], *, timeout: float | None = None, show_progress: bool = True
) -> ingestor_pb2.IngestReport:
    """Run an ingest through the ingestor's API, drawing its progress; returns the final report."""
    channel = create_channel(address, ["musicrec.ingestor.v1.IngestorService"])
    printer = ProgressPrinter("ingest", "documents", stream=sys.stderr)
    try:
        stub = ingestor_pb2_grpc.IngestorServiceStub(channel)
        call = stub.Ingest(
            ingestor_pb2.IngestRequest(paths=[str(p.resolve()) for p in paths]), timeout=timeout
        )
        report: ingestor_pb2.IngestReport | None = None
        last: ingestor_pb2.IngestProgress | None = None
        async for event in call:
            if event.HasField("report"):
                report = event.report
                if show_progress and last is not None:
                    _show(printer, last, final=True)
            elif show_progress and event.progress.stage == "index":
                if last is not None:
                    _show(printer, last, final=True)
                    last = None
                print("building the search index (HNSW) …", file=sys.stderr, flush=True)
            elif show_progress:
                last = event.progress
                _show(printer, last, final=False)
        if report is None:
            raise RuntimeError("the ingestor closed the stream without a report")
        return report
    finally:
        await channel.close()


def _show(printer: ProgressPrinter, p: ingestor_pb2.IngestProgress, *, final: bool) -> None:
    fraction = p.bytes_read / p.bytes_total if p.bytes_total else None
    eta = 0.0 if final else p.eta_seconds
    printer.show(
        p.documents_read,
        p.documents_total or None,
        p.documents_per_second,
        eta,
        final=final,
        fraction=fraction,
    )


async def recommend(
    address: str, request: recommender_pb2.RecommendRequest, *, timeout: float = 10.0
) -> recommender_pb2.RecommendResponse:
    channel = create_channel(address, ["musicrec.recommender.v1.RecommenderService"])
    try:
        stub = recommender_pb2_grpc.RecommenderServiceStub(channel)
        response: recommender_pb2.RecommendResponse = await stub.Recommend(request, timeout=timeout)
        return response
    finally:
        await channel.close()


async def check_health(address: str, service: str = "", *, timeout: float = 3.0) -> str:
    """The serving status name of `service` ("" = the whole server) at `address`."""
    channel = grpc.aio.insecure_channel(address)
    try:
        stub = health_pb2_grpc.HealthStub(channel)
        response = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))
    finally:
        await channel.close()
