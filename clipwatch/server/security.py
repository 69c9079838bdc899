"""What every answer carries for the browser, and which web pages may open the live channel.

- `SecurityHeaders`: an ASGI middleware that adds a Content-Security-Policy, X-Frame-Options,
  X-Content-Type-Options and Referrer-Policy to every HTTP response (pages, static files,
  API answers, errors) that does not set its own. The viewer's policy allows what it uses and
  nothing else: its own scripts and styles (ES modules and a stylesheet from /static, no
  inline script or style), images from the API, from `blob:` URLs (video frames arrive over
  the websocket and are shown as blobs) and `data:` (the empty favicon), and connections back
  to the service (fetch and the websocket). No page may be framed.
- `origin_allowed`: a browser sends the page's Origin with a websocket handshake and the
  server must check it (browsers do not apply the same-origin policy to websockets). A page of
  the service's own origin (the Origin's host and port equal the request's Host) or one named
  in `server.allowed_origins` may connect; a client that sends no Origin (an integration, not
  a browser page) may too, its credentials checked as always.
- `add_docs`: /docs and /openapi.json as routes of the app, so they need a signed-in caller
  like every other route when auth is configured (open when it is not: loopback only). The
  Swagger UI page loads its script and stylesheet from FastAPI's default CDN; its policy
  allows that CDN and the page's one inline script, by hash.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

VIEWER_POLICY = "; ".join((
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' blob: data:",
    "connect-src 'self'",  # 'self' covers ws:// and wss:// to the same host (CSP level 3)
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
))
HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", VIEWER_POLICY.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
)
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
DOCS_CDN = "https://cdn.jsdelivr.net"


class SecurityHeaders:
    """Adds `HEADERS` to every HTTP response that does not set them itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend(h for h in HEADERS if h[0] not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _origin_key(scheme: str, host: str | None, port: int | None) -> tuple[str, int] | None:
    if not host:
        return None
    return host.lower(), port or DEFAULT_PORTS.get(scheme, 0)


def normalize_origin(origin: str) -> tuple[str, str, int] | None:
    """'https://Cams.example.com' -> ('https', 'cams.example.com', 443); None if not an
    http(s) origin ('null', a file page, garbage)."""
    try:
        parts = urlsplit(origin)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        return None
    key = _origin_key(parts.scheme, parts.hostname, port)
    return None if key is None else (parts.scheme, *key)


def origin_allowed(connection: HTTPConnection, allowed: Iterable[str]) -> bool:
    """Whether the page that opens this websocket may: no Origin (not a browser page), the
    service's own origin (host and port as the request's Host), or one in `allowed`."""
    origin = connection.headers.get("origin")
    if origin is None:
        return True
    page = normalize_origin(origin)
    if page is None:
        return False
    if page in {normalize_origin(o) for o in allowed}:
        return True
    host = connection.headers.get("host", "")
    try:
        served = urlsplit(f"//{host}")
        ours = _origin_key(page[0], served.hostname, served.port)
    except ValueError:
        return False
    return ours is not None and ours == page[1:]


def _inline_script_hashes(html: str) -> list[str]:
    scripts = re.findall(r"<script>(.*?)</script>", html, flags=re.DOTALL)
    return [f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'"
            for s in scripts]


def add_docs(app: FastAPI, openapi_url: str = "/openapi.json", docs_url: str = "/docs") -> None:
    """Serve the OpenAPI document and Swagger UI as ordinary routes (behind the app's auth
    dependency; create the app with `openapi_url=None, docs_url=None, redoc_url=None`)."""
    page = get_swagger_ui_html(openapi_url=openapi_url, title=f"{app.title} - Swagger UI")
    html = bytes(page.body).decode()
    policy = "; ".join((
        "default-src 'self'",
        f"script-src 'self' {DOCS_CDN} {' '.join(_inline_script_hashes(html))}",
        f"style-src 'self' {DOCS_CDN} 'unsafe-inline'",  # Swagger UI styles its widgets
        "img-src 'self' data: https://fastapi.tiangolo.com",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ))

    @app.get(openapi_url, include_in_schema=False)
    def openapi_document() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get(docs_url, include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return HTMLResponse(html, headers={"Content-Security-Policy": policy})


__all__ = ["SecurityHeaders", "add_docs", "normalize_origin", "origin_allowed"]
