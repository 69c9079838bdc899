"""/ws: the live channel. Clients subscribe to cameras and get scores, frames and alerts.

Every message both ways is defined in messages.py (and shown in /docs). Client messages:
  subscribe  which cameras, with or without video and heatmap overlay
  resume     the alert messages missed since a sequence number, from the store
  ping       answered by a pong
A malformed message (or one the server fails on: the store unreadable, a bug) gets an
`error` reply and the connection stays open. The route is public to the app's auth default:
it checks the credentials itself after accepting, so it can close with 4401, which a browser
sees (a refused handshake is only "1006"). A handshake from a web page of another origin is
refused before anything else (HTTP 403): browsers let any page open a websocket anywhere,
with the operator's cookie (security.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from clipwatch.config import one_line
from clipwatch.server.auth import public
from clipwatch.server.deps import connection_service
from clipwatch.server.event_store import StoreError
from clipwatch.server.hub import Client
from clipwatch.server.messages import (
    CLIENT_MESSAGE_MODELS,
    WS_PATH,
    ErrorMessage,
    HelloMessage,
    PingMessage,
    PongMessage,
    ResumeMessage,
    SubscribeMessage,
)
from clipwatch.server.security import origin_allowed
from clipwatch.server.service import Service

log = logging.getLogger(__name__)
router = APIRouter()
MAX_MESSAGE_BYTES = 16_384
UNAUTHORIZED = 4401  # application close code: the viewer shows its login form
RESUME_LIMIT = 5000  # alert messages replayed at most; older ones are in /api/events


async def _read_store(service: Service, read, *args):
    """A store read from the event loop: at once for the local SQLite file (a resume then
    reaches the client in order with the broadcasts), on a thread for a database across the
    network (cluster mode), which must not hold up every viewer while it answers."""
    if getattr(service.store, "remote", False):
        return await asyncio.to_thread(read, *args)
    return read(*args)


def _error(client: Client, service: Service, message: str) -> None:
    service.hub.enqueue(client, ErrorMessage(message=message))


async def _handle(text: str, client: Client, service: Service) -> None:
    if len(text) > MAX_MESSAGE_BYTES:
        return _error(client, service, f"message too long (over {MAX_MESSAGE_BYTES} bytes)")
    try:
        raw = json.loads(text)
    except json.JSONDecodeError:
        return _error(client, service, "message is not JSON")
    if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
        return _error(client, service, "message must be a JSON object with a 'type'")
    kind = raw["type"]
    model = CLIENT_MESSAGE_MODELS.get(kind)
    if model is None:
        return _error(client, service, f"unknown message type {kind!r}")
    try:
        message = model.model_validate(raw)
    except ValidationError as exc:
        return _error(client, service, f"{kind}: {one_line(exc)}")
    match message:
        case SubscribeMessage():
            cameras = None if "*" in message.cameras else set(message.cameras)
            service.hub.subscribe(client, cameras, message.video, message.overlay)
        case ResumeMessage():
            try:
                missed = await _read_store(service, service.store.messages_since,
                                           message.since, RESUME_LIMIT)
            except StoreError as exc:
                return _error(client, service, f"resume: {exc}; send it again later")
            for alert in missed:
                service.hub.enqueue(client, alert)
        case PingMessage():
            service.hub.enqueue(client, PongMessage(server_time=time.time()))


@router.websocket(WS_PATH)
@public
async def live(websocket: WebSocket) -> None:
    service = connection_service(websocket)
    if not origin_allowed(websocket, service.config.server.allowed_origins):
        log.info("refused a websocket from a page of %s (not this service's origin)",
                 websocket.headers.get("origin", "")[:200])
        await websocket.close(code=1008)  # before accepting: the handshake gets a 403
        return
    await websocket.accept()
    if service.auth.identify(websocket) is None:
        # Accepted first so the browser sees this code (a refused handshake is only "1006").
        await websocket.close(code=UNAUTHORIZED, reason="sign in or send a valid API token")
        return
    client = service.hub.connect(websocket)
    service.hub.enqueue(client, HelloMessage(server_time=time.time(),
                                             last_seq=await _read_store(
                                                 service, service.store.last_seq),
                                             cameras=service.camera_views()))
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
                try:
                    await _handle(event["text"], client, service)
                except Exception:  # a bug: said once here, the connection carries on
                    log.exception("websocket: handling a client message failed")
                    _error(client, service, "the server could not handle that message")
            else:
                _error(client, service, "binary messages are not accepted")
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        service.hub.disconnect(client)
        sender.cancel()
