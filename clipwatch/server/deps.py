"""Dependencies injected into routes: the running Service (no globals)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from clipwatch.server.service import Service


def get_service(request: Request) -> Service:
    return request.app.state.service


def connection_service(connection: HTTPConnection) -> Service:
    """The same for websockets, whose handlers get a WebSocket rather than a Request."""
    return connection.app.state.service


ServiceDep = Annotated[Service, Depends(get_service)]
