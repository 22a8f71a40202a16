"""What an orchestrator and Prometheus ask: ``/healthz``, ``/readyz``, ``/metrics``.

``/healthz`` says the process serves HTTP (restart it if not); ``/readyz`` says
the broker answers, so the events it is sent can be stored (route traffic
elsewhere if not). Neither reads or writes events. ``/metrics`` is open unless
``SLAWATCH_METRICS_TOKEN`` is set.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Depends, Response, status
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from slawatch_ingest.publishing import Publisher


def probes_router(
    publisher: Publisher,
    registry: CollectorRegistry,
    ready_timeout_s: float,
    metrics_access: Callable[..., None] = lambda: None,
) -> APIRouter:
    """The router of the three probes; ``/readyz`` waits at most ``ready_timeout_s``;
    ``metrics_access`` guards ``/metrics`` (``ServiceSettings.metrics_access``)."""
    router = APIRouter()

    @router.get("/healthz", summary="The process is alive (always 200)")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/readyz",
        summary="The broker is reachable (200) or not (503)",
        responses={503: {"description": "The broker did not answer."}},
    )
    async def readyz() -> Response:
        if await publisher.ready(ready_timeout_s):
            return JSONResponse({"status": "ready"})
        return JSONResponse(
            {"status": "not ready", "detail": "the Kafka broker is not reachable"},
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        )

    @router.get(
        "/metrics",
        summary="Prometheus metrics",
        include_in_schema=False,
        dependencies=[Depends(metrics_access)],
    )
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router
