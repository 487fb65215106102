"""``GET/PUT /api/roi/{stream}``: the ROI editor's back end.

A new polygon is checked against the frame it was drawn on (at least 3 finite points, every point
inside the width x height of the stream's latest frame), then saved by `roi_store.save_roi`
(validated by the app's own config loader, backup, atomic replace, comments kept). Finally it is
handed to the running app (``apply_roi``), which swaps the stream's `Roi` between two frames; when
that is not possible (no app attached, or ``mask_outside_roi``, whose mask is built at start-up) the
response says that a restart is needed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

from fastapi import APIRouter, HTTPException
from starlette.concurrency import run_in_threadpool

from edge_app.dashboard.models import ErrorBody, RoiBody, RoiSaved, RoiStatus
from edge_app.dashboard.roi_store import UnknownStreamError, read_roi, save_roi
from edge_app.dashboard.state import DashboardState
from edge_app.errors import EdgeAppError

ApplyRoi = Callable[[str, list[tuple[float, float]]], tuple[bool, str]]
"""``apply(stream, points) -> (applied_live, message)``."""

RESTART_NEEDED = "saved; restart edge-app run for the counter to use it"


def polygon_problem(points: Sequence[tuple[float, float]], size: tuple[int, int]) -> str | None:
    """Why ``points`` is not a usable ROI on a ``size`` = (width, height) frame, or None."""
    if len(points) < 3:
        return f"a polygon needs at least 3 points, got {len(points)}"
    width, height = size
    for i, (x, y) in enumerate(points):
        if not (math.isfinite(x) and math.isfinite(y)):
            return f"point {i} ({x}, {y}) is not a finite number"
        if not (0 <= x <= width and 0 <= y <= height):
            return f"point {i} ({x:g}, {y:g}) lies outside the {width}x{height} frame"
    return None


def roi_router(state: DashboardState, config_path: Path, apply_roi: ApplyRoi | None) -> APIRouter:
    router = APIRouter(prefix="/api/roi", tags=["roi"])
    errors = {404: {"model": ErrorBody}, 409: {"model": ErrorBody}, 422: {"model": ErrorBody}}

    def known(stream: str) -> str:
        line = state.line_of(stream)
        if line is None:
            raise HTTPException(404, f"unknown stream {stream!r} (streams: {', '.join(state.streams)})")
        return line

    def status(stream: str, line: str, points: list[tuple[float, float]] | None) -> dict:
        view = state.frame(stream).view
        width, height = view.size if view is not None else (None, None)
        return {"stream": stream, "line": line, "points": points, "live_points": state.streams[stream].roi,
                "frame_width": width, "frame_height": height, "frame_url": f"/api/frame/{stream}.jpg?raw=true"}

    @router.get("/{stream}", response_model=RoiStatus, responses=errors)
    async def get_roi(stream: str) -> dict:
        """The stream's ROI in the config file and in the running counter, and the frame size to draw on."""
        line = known(stream)
        try:
            points = await run_in_threadpool(read_roi, config_path, stream)
        except UnknownStreamError as exc:
            raise HTTPException(409, str(exc)) from None
        except EdgeAppError as exc:
            raise HTTPException(409, f"the config file cannot be read now: {exc}") from None
        return status(stream, line, points)

    @router.put("/{stream}", response_model=RoiSaved, responses=errors)
    async def put_roi(stream: str, body: RoiBody) -> dict:
        """Save a new ROI polygon (frame pixels) into the config file, keeping a backup; apply it live if possible."""
        line = known(stream)
        view = state.frame(stream).view
        if view is None:
            raise HTTPException(409, f"no frame from stream {stream!r} yet: the ROI cannot be checked against "
                                "the frame size")
        problem = polygon_problem(body.points, view.size)
        if problem:
            raise HTTPException(422, f"roi: {problem}")
        points = [(float(x), float(y)) for x, y in body.points]
        try:
            saved = await run_in_threadpool(save_roi, config_path, stream, points)
        except UnknownStreamError as exc:
            raise HTTPException(409, str(exc)) from None
        except EdgeAppError as exc:
            raise HTTPException(422, str(exc)) from None
        applied, message = apply_roi(stream, points) if apply_roi is not None else (False, RESTART_NEEDED)
        return {**status(stream, line, points), "backup": str(saved.backup), "applied_live": applied,
                "message": message}

    return router
