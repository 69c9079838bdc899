"""The websocket hub: fans messages out to viewers, each with its own bounded queues.

A slow client must never slow the pipeline or the other clients, and must never lose an
alert. So each client has three queues, drained by its own sender task in this order:
- reliable (alerts, camera status and list changes): never dropped; a client that lets
  `client_alerts` of them pile up is disconnected, and on reconnecting resumes from the
  event store (see `EventStore.messages_since`);
- scores (one small JSON per frame): bounded, oldest dropped first;
- video frames: at most `client_frames` per camera, latest wins.

The pipeline runs in threads; everything here runs on the server's event loop, reached from
threads through `call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import struct
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from starlette.websockets import WebSocket, WebSocketDisconnect

from clipwatch.config import LiveConfig
from clipwatch.server.messages import FrameHeader, to_wire
from clipwatch.server.metrics import Metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LiveFrame:
    """One camera frame for viewers: plain and heatmap-overlay JPEGs (either may be None)."""

    camera: str
    frame: int
    captured_at: float
    plain: bytes | None
    overlay: bytes | None

    def packet(self, overlay: bool) -> bytes | None:
        """Binary message: 4-byte big-endian header length, JSON `FrameHeader`, JPEG."""
        jpeg = self.overlay if overlay and self.overlay is not None else self.plain
        if jpeg is None:
            return None
        header = FrameHeader(camera=self.camera, frame=self.frame, captured_at=self.captured_at,
                             overlay=jpeg is self.overlay).model_dump_json().encode()
        return struct.pack(">I", len(header)) + header + jpeg


@dataclass(eq=False)  # compared and hashed by identity: one per connection
class Client:
    websocket: WebSocket
    limits: LiveConfig
    cameras: set[str] | None = None  # None: every camera
    video: bool = True
    overlay: bool = True
    subscribed: bool = False
    reliable: deque[dict[str, Any]] = field(default_factory=deque)
    scores: deque[dict[str, Any]] = field(init=False)
    frames: dict[str, deque[LiveFrame]] = field(default_factory=dict)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    overflowed: bool = False

    def __post_init__(self) -> None:
        self.scores = deque(maxlen=self.limits.client_scores)

    def wants(self, camera: str) -> bool:
        return self.subscribed and (self.cameras is None or camera in self.cameras)


class Hub:
    def __init__(self, limits: LiveConfig, metrics: Metrics) -> None:
        self.limits = limits
        self.metrics = metrics
        self.clients: set[Client] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        # Which frame variants some client wants, per camera; read by the pipeline thread so
        # it only encodes JPEGs someone will receive. Replaced whole, never mutated.
        self.wanted: dict[str, tuple[bool, bool]] = {}
        self._all_wanted: tuple[bool, bool] = (False, False)

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    # -- from pipeline threads ----------------------------------------------------------

    def wants_frames(self, camera: str) -> tuple[bool, bool]:
        """(plain, overlay): which JPEGs of this camera's frames some client will take."""
        plain, overlay = self.wanted.get(camera, (False, False))
        all_plain, all_overlay = self._all_wanted
        return plain or all_plain, overlay or all_overlay

    def publish(self, message: BaseModel | Mapping[str, Any]) -> None:
        """Thread-safe: queue a message (score, status, alert, cameras) for clients; a model
        from messages.py, or its `wire()` dict."""
        self._call(self._fan_out, to_wire(message))

    def publish_frame(self, frame: LiveFrame) -> None:
        self._call(self._fan_out_frame, frame)

    def _call(self, fn, arg) -> None:
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        # The loop may close between the check and the call: the server is stopping.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(fn, arg)

    # -- on the event loop --------------------------------------------------------------

    def _fan_out(self, message: dict[str, Any]) -> None:
        camera = message.get("camera")
        for client in list(self.clients):
            if camera is not None and message["type"] == "score" and not client.wants(camera):
                continue
            self.enqueue(client, message)

    def enqueue(self, client: Client, message: BaseModel | Mapping[str, Any]) -> None:
        message = to_wire(message)
        if message["type"] == "score":
            client.scores.append(message)  # the deque's bound drops the oldest
        else:
            if len(client.reliable) >= self.limits.client_alerts:
                # This client cannot keep up even with alerts: drop the client, not the
                # alerts. It resumes from the store when it reconnects.
                client.overflowed = True
            client.reliable.append(message)
        client.wake.set()

    def _fan_out_frame(self, frame: LiveFrame) -> None:
        for client in list(self.clients):
            if not (client.video and client.wants(frame.camera)):
                continue
            queue = client.frames.setdefault(frame.camera,
                                             deque(maxlen=self.limits.client_frames))
            if len(queue) == queue.maxlen:
                self.metrics.ws_frames_dropped.inc()
            queue.append(frame)
            client.wake.set()

    def connect(self, websocket: WebSocket) -> Client:
        client = Client(websocket, self.limits)
        self.clients.add(client)
        self.metrics.ws_clients.set(len(self.clients))
        return client

    def disconnect(self, client: Client) -> None:
        self.clients.discard(client)
        self.metrics.ws_clients.set(len(self.clients))
        self._recompute_wanted()

    def subscribe(self, client: Client, cameras: set[str] | None, video: bool,
                  overlay: bool) -> None:
        client.cameras, client.video, client.overlay = cameras, video, overlay
        client.subscribed = True
        client.frames.clear()  # frames of the old variant or cameras are stale now
        self._recompute_wanted()

    def _recompute_wanted(self) -> None:
        wanted: dict[str, tuple[bool, bool]] = {}
        all_plain = all_overlay = False
        for client in self.clients:
            if not (client.subscribed and client.video):
                continue
            if client.cameras is None:
                all_plain |= not client.overlay
                all_overlay |= client.overlay
                continue
            for camera in client.cameras:
                plain, overlay = wanted.get(camera, (False, False))
                wanted[camera] = (plain or not client.overlay, overlay or client.overlay)
        self.wanted, self._all_wanted = wanted, (all_plain, all_overlay)

    async def run_sender(self, client: Client) -> None:
        """Send the client's queues until it disconnects or overflows."""
        ws = client.websocket
        try:
            while True:
                await client.wake.wait()
                client.wake.clear()
                if client.overflowed:
                    log.warning("a websocket client fell %d alert messages behind; closing it "
                                "so it resumes from the store", len(client.reliable))
                    await ws.close(code=1013, reason="too far behind; reconnect to resume")
                    return
                while client.reliable:
                    await ws.send_text(json.dumps(client.reliable.popleft()))
                while client.scores:
                    await ws.send_text(json.dumps(client.scores.popleft()))
                for camera, queue in list(client.frames.items()):
                    while queue:
                        frame = queue.popleft()
                        packet = frame.packet(client.overlay)
                        if packet is None:
                            continue
                        await ws.send_bytes(packet)
                        self.metrics.frame_to_viewer_seconds.labels(camera).observe(
                            max(0.0, time.time() - frame.captured_at))
                    if client.reliable:
                        break  # an alert that arrived meanwhile goes before more video
                if client.reliable or client.scores or any(client.frames.values()):
                    client.wake.set()
        except (WebSocketDisconnect, RuntimeError, OSError):
            return  # the client went away; the receive side cleans up
