"""Long-lived responses: server-sent events for the page, MJPEG for a live view.

Why server-sent events rather than websockets: updates flow one way (app -> browser), SSE is plain
HTTP (works through the same token cookie and any proxy), and ``EventSource`` reconnects by itself
after the appliance restarts. The loop wakes every ``POLL_S`` and sends only what changed:

* ``lines``: all lines' counts, when `DashboardState.version` moved (counts arrive ~1/s per line);
* ``bins`` / ``anomalies``: events newer than the last one sent (the first message carries the recent ones);
* ``health``: every ``HEALTH_EVERY_S``;
* a comment line every ``KEEPALIVE_S`` when nothing else is sent, so idle proxies keep the connection.

Both generators end when the client goes away or the state is closed (shutdown), so uvicorn can stop.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from edge_app.dashboard.models import AnomalyEvent, BinEvent, Health, LineStatus
from edge_app.dashboard.state import DashboardState

POLL_S = 0.5
HEALTH_EVERY_S = 2.0
KEEPALIVE_S = 15.0
RECENT_ON_CONNECT = 20


def sse_message(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


async def sse_updates(state: DashboardState, request: Request) -> AsyncIterator[str]:
    yield "retry: 2000\n\n"
    version, last_bin, last_anomaly = -1, 0, 0
    last_health = last_sent = 0.0
    first = True
    while not state.closed.is_set() and not await request.is_disconnected():
        now = time.monotonic()
        messages: list[str] = []
        if state.version != version:
            version = state.version
            lines = await run_in_threadpool(state.lines)
            messages.append(sse_message("lines", [LineStatus(**x).model_dump() for x in lines]))
            limit = RECENT_ON_CONNECT if first else 1000
            bins = state.bins(limit=limit, after=last_bin)
            anomalies = state.anomalies(limit=limit, after=last_anomaly)
            if bins or first:
                last_bin = max([b["id"] for b in bins], default=last_bin)
                messages.append(sse_message("bins", [BinEvent(**b).model_dump() for b in bins]))
            if anomalies or first:
                last_anomaly = max([a["id"] for a in anomalies], default=last_anomaly)
                messages.append(sse_message("anomalies", [AnomalyEvent(**a).model_dump() for a in anomalies]))
            first = False
        if now - last_health >= HEALTH_EVERY_S:
            last_health = now
            health = await run_in_threadpool(state.health)
            messages.append(sse_message("health", Health(**health).model_dump()))
        if not messages and now - last_sent >= KEEPALIVE_S:
            messages.append(": keep-alive\n\n")
        for message in messages:
            yield message
        if messages:
            last_sent = now
        await asyncio.sleep(POLL_S)


async def mjpeg_frames(state: DashboardState, stream: str, request: Request, fps: float) -> AsyncIterator[bytes]:
    """``multipart/x-mixed-replace`` parts: each new annotated frame, at most ``fps`` per second."""
    slot = state.frame(stream)
    last_index = -1
    while not state.closed.is_set() and not await request.is_disconnected():
        got = await run_in_threadpool(slot.jpeg, True)
        if got is not None and got[0] != last_index:
            last_index, data = got
            yield (b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: " + str(len(data)).encode()
                   + b"\r\n\r\n" + data + b"\r\n")
        await asyncio.sleep(1.0 / fps)
