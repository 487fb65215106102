"""`create_app`: the dashboard's FastAPI application (page, JSON API, SSE, MJPEG, ROI editor).

Why FastAPI: the response models (`models`) give the OpenAPI document at ``/openapi.json`` (and the
interactive ``/docs``) for free, request bodies are validated by the same pydantic the config uses,
and it runs on uvicorn in one background thread of the app (see `runtime`).

Errors are one line, like the CLI's: ``{"detail": "unknown line 'line-9' (lines: line-1, line-2)"}``;
a malformed request body gets 422 with the first problem and where it is (``body.points.0.1: ...``).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from edge_app.dashboard.auth import install_token_auth
from edge_app.dashboard.live import mjpeg_frames, sse_updates
from edge_app.dashboard.models import AnomalyEvent, BinEvent, ErrorBody, Health, LineDetail, LineStatus
from edge_app.dashboard.roi_api import ApplyRoi, roi_router
from edge_app.dashboard.state import DashboardState

STATIC = Path(__file__).resolve().parent / "static"
NO_STORE = {"Cache-Control": "no-store"}
NOT_FOUND = {404: {"model": ErrorBody}}


def _first_validation_error(exc: RequestValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "request"
    got = f" (got {first['input']!r:.60})" if "input" in first and first.get("type") != "missing" else ""
    more = len(exc.errors()) - 1
    return f"{where}: {first.get('msg', 'invalid')}{got}" + (f" [+{more} more]" if more else "")


def create_app(state: DashboardState, config_path: Path, *, token: str | None = None,
               apply_roi: ApplyRoi | None = None, frame_fps: float = 4.0, site: str = "") -> FastAPI:
    """The dashboard over ``state``; the ROI editor writes ``config_path``; ``token`` protects every route."""
    app = FastAPI(title="edge-app dashboard", version="1",
                  description="Live counts, bins, anomalies and health of this edge-app, and its ROI editor.")
    if token:
        install_token_auth(app, token)

    @app.exception_handler(RequestValidationError)
    async def one_line_422(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _first_validation_error(exc)}, status_code=422)

    def known_stream(stream: str) -> None:
        if state.line_of(stream) is None:
            raise HTTPException(404, f"unknown stream {stream!r} (streams: {', '.join(state.streams)})")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers=NO_STORE)

    @app.get("/api/site", tags=["lines"])
    async def site_info() -> dict[str, str]:
        """The site id shown in the page title."""
        return {"site": site}

    @app.get("/api/lines", response_model=list[LineStatus], tags=["lines"])
    async def lines() -> list[dict]:
        """Every line's counts (local, global, bins completed, trays per hour) and its cameras."""
        return await run_in_threadpool(state.lines)

    @app.get("/api/lines/{line}", response_model=LineDetail, responses=NOT_FOUND, tags=["lines"])
    async def line(line: str, minutes: float = Query(60.0, gt=0, le=24 * 60,
                                                     description="History window (60: last hour, 480: a shift)")
                   ) -> dict:
        """One line with its counts over the last ``minutes``."""
        detail = await run_in_threadpool(state.line, line, minutes)
        if detail is None:
            known = sorted({i.line for i in state.streams.values()})
            raise HTTPException(404, f"unknown line {line!r} (lines: {', '.join(known)})")
        return detail

    @app.get("/api/bins", response_model=list[BinEvent], tags=["events"])
    async def bins(limit: int = Query(50, ge=1, le=200), line: str | None = None) -> list[dict]:
        """Recently completed bins, newest first."""
        return state.bins(limit=limit, line=line)

    @app.get("/api/bins/{event_id}/snapshot.jpg", responses=NOT_FOUND, tags=["events"],
             response_class=Response)
    async def bin_snapshot(event_id: int) -> Response:
        """The fullest frame of that bin, with its counted boxes."""
        data = state.bin_snapshot(event_id)
        if data is None:
            raise HTTPException(404, f"no snapshot for bin event {event_id} (only the latest are kept)")
        return Response(data, media_type="image/jpeg")

    @app.get("/api/anomalies", response_model=list[AnomalyEvent], tags=["events"])
    async def anomalies(limit: int = Query(50, ge=1, le=200), line: str | None = None) -> list[dict]:
        """Recent inspection results, newest first."""
        return state.anomalies(limit=limit, line=line)

    @app.get("/api/anomalies/{event_id}/snapshot.jpg", responses=NOT_FOUND, tags=["events"],
             response_class=Response)
    async def anomaly_snapshot(event_id: int) -> Response:
        path = state.anomaly_snapshot(event_id)
        if path is None:
            raise HTTPException(404, f"no snapshot for anomaly event {event_id}")
        return FileResponse(path)

    @app.get("/api/health", response_model=Health, tags=["health"])
    async def health() -> dict:
        """fps, dropped frames and latency per stream, inference latency, outbox depth, broker, model version."""
        return await run_in_threadpool(state.health)

    @app.get("/api/frame/{stream}.jpg", responses={**NOT_FOUND, 503: {"model": ErrorBody}}, tags=["frames"],
             response_class=Response)
    async def frame(stream: str, raw: bool = Query(False, description="Without boxes, ROI and header")) -> Response:
        """The stream's latest frame as JPEG (annotated unless ``raw``)."""
        known_stream(stream)
        got = await run_in_threadpool(state.frame(stream).jpeg, not raw)
        if got is None:
            raise HTTPException(503, f"no frame from stream {stream!r} yet", headers={"Retry-After": "1"})
        return Response(got[1], media_type="image/jpeg", headers={**NO_STORE, "X-Frame-Index": str(got[0])})

    @app.get("/api/stream/{stream}.mjpg", responses=NOT_FOUND, tags=["frames"], response_class=StreamingResponse)
    async def mjpeg(stream: str, request: Request) -> StreamingResponse:
        """Live annotated frames as ``multipart/x-mixed-replace`` (MJPEG: an ``<img>``, VLC or ffplay shows it)."""
        known_stream(stream)
        return StreamingResponse(mjpeg_frames(state, stream, request, frame_fps),
                                 media_type="multipart/x-mixed-replace; boundary=frame", headers=NO_STORE)

    @app.get("/api/events", tags=["live"], response_class=StreamingResponse)
    async def events(request: Request) -> StreamingResponse:
        """Server-sent events: ``lines``, ``bins``, ``anomalies`` (new ones) and ``health``."""
        return StreamingResponse(sse_updates(state, request), media_type="text/event-stream",
                                 headers={**NO_STORE, "X-Accel-Buffering": "no"})

    app.include_router(roi_router(state, config_path, apply_roi))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
