"""/ws: the live channel. Clients subscribe to cameras and get scores, frames and alerts.

Client messages (JSON text):
  {"type": "subscribe", "cameras": ["*"] | [ids], "video": true, "overlay": true}
  {"type": "resume", "since": <last alert seq seen>}   alerts missed while away, from the store
  {"type": "ping"}
A malformed message gets an {"type": "error"} reply and the connection stays open.
"""

from __future__ import annotations

import asyncio
import json
import time

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from clipwatch.config import one_line
from clipwatch.server.deps import connection_service
from clipwatch.server.hub import Client
from clipwatch.server.service import Service

router = APIRouter()
MAX_MESSAGE_BYTES = 16_384
UNAUTHORIZED = 4401  # application close code: the viewer shows its login form
RESUME_LIMIT = 5000  # alert messages replayed at most; older ones are in /api/events


class Subscribe(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: str
    cameras: list[str] = Field(default_factory=lambda: ["*"], max_length=256)
    video: bool = True
    overlay: bool = True


class Resume(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: str
    since: int = Field(ge=0)


def _error(client: Client, service: Service, message: str) -> None:
    service.hub.enqueue(client, {"type": "error", "message": message})


def _handle(text: str, client: Client, service: Service) -> None:
    if len(text) > MAX_MESSAGE_BYTES:
        return _error(client, service, f"message too long (over {MAX_MESSAGE_BYTES} bytes)")
    try:
        message = json.loads(text)
    except json.JSONDecodeError:
        return _error(client, service, "message is not JSON")
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        return _error(client, service, "message must be a JSON object with a 'type'")
    kind = message["type"]
    try:
        if kind == "subscribe":
            sub = Subscribe.model_validate(message)
            cameras = None if "*" in sub.cameras else set(sub.cameras)
            service.hub.subscribe(client, cameras, sub.video, sub.overlay)
        elif kind == "resume":
            resume = Resume.model_validate(message)
            for missed in service.store.messages_since(resume.since, RESUME_LIMIT):
                service.hub.enqueue(client, missed)
        elif kind == "ping":
            service.hub.enqueue(client, {"type": "pong", "server_time": time.time()})
        else:
            _error(client, service, f"unknown message type {kind!r}")
    except ValidationError as exc:
        _error(client, service, f"{kind}: {one_line(exc)}")


@router.websocket("/ws")
async def live(websocket: WebSocket) -> None:
    service = connection_service(websocket)
    await websocket.accept()
    if service.auth.identify(websocket) is None:
        # Accepted first so the browser sees this code (a refused handshake is only "1006").
        await websocket.close(code=UNAUTHORIZED, reason="sign in or send a valid API token")
        return
    client = service.hub.connect(websocket)
    service.hub.enqueue(client, {"type": "hello", "server_time": time.time(),
                                 "last_seq": service.store.last_seq(),
                                 "cameras": service.camera_views()})
    sender = asyncio.create_task(service.hub.run_sender(client))
    try:
        while not sender.done():
            receive = asyncio.ensure_future(websocket.receive())
            done, _ = await asyncio.wait({receive, sender}, return_when=asyncio.FIRST_COMPLETED)
            if receive not in done:
                receive.cancel()
                break  # the sender closed the connection (the client fell too far behind)
            event = receive.result()
            if event["type"] == "websocket.disconnect":
                break
            if event.get("text") is not None:
                _handle(event["text"], client, service)
            else:
                _error(client, service, "binary messages are not accepted")
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        service.hub.disconnect(client)
        sender.cancel()
