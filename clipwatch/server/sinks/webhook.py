"""Webhook sink: an HTTP POST of the message's JSON, signed with the sink's secret.

Headers: `Content-Type: application/json`, `X-Clipwatch-Signature: sha256=<hex>` (HMAC-SHA256
of the raw body), `X-Clipwatch-Seq` and `X-Clipwatch-Event`. Any 2xx answer is delivery;
anything else (another status, a redirect, no answer within `timeout_s`, a refused
connection) is a failed try, retried by the sink's thread. Credentials in the URL
(https://user:password@host/...) are sent as HTTP Basic auth. A sink added through the API
may not reach `server.denied_networks` (checked before every try, the host resolved anew).
"""

from __future__ import annotations

import base64
import http.client
import ssl
import time
import urllib.request
from collections.abc import Callable
from urllib.error import HTTPError, URLError
from urllib.parse import unquote, urlsplit, urlunsplit

from clipwatch import __version__
from clipwatch.config import SinkConfig
from clipwatch.server.sinks.payload import SIGNATURE_HEADER, Outgoing, sign
from clipwatch.server.sinks.transport import DeliveryFailed

MAX_ANSWER = 64 * 1024  # read (and ignore) at most this much of a receiver's answer


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is a failure: a POST is not replayed elsewhere (nor turned into a GET)."""

    def redirect_request(self, *args, **kwargs):
        return None


class WebhookTransport:
    connected = None  # no connection is held between tries
    last_error = None

    def __init__(self, sink: SinkConfig,
                 check_host: Callable[[str], None] | None = None) -> None:
        assert sink.secret is not None  # the config requires it for webhooks
        self.sink = sink
        self.secret = sink.secret
        self.check_host = check_host
        parts = urlsplit(sink.url)
        netloc = parts.hostname or ""
        if ":" in netloc:
            netloc = f"[{netloc}]"  # IPv6
        if parts.port:
            netloc += f":{parts.port}"
        self.url = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
        self.host = parts.hostname or ""
        self.auth = None
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            self.auth = "Basic " + base64.b64encode(pair.encode()).decode()
        context = ssl.create_default_context(cafile=str(sink.ca_file) if sink.ca_file else None)
        self.opener = urllib.request.build_opener(
            _NoRedirect(), urllib.request.HTTPSHandler(context=context))

    def start(self, nudge: Callable[[], None]) -> None:
        pass

    def close(self) -> None:
        pass

    def deliver(self, message: Outgoing) -> None:
        self._post(message.body, {"X-Clipwatch-Seq": str(message.seq),
                                  "X-Clipwatch-Event": message.kind})

    def test(self, body: bytes) -> str:
        return self._post(body, {"X-Clipwatch-Event": "test"})

    def _post(self, body: bytes, headers: dict[str, str]) -> str:
        if self.check_host is not None:
            self.check_host(self.host)
        headers = {"Content-Type": "application/json", "User-Agent": f"clipwatch/{__version__}",
                   SIGNATURE_HEADER: sign(self.secret, body), **headers}
        if self.auth:
            headers["Authorization"] = self.auth
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        timeout = self.sink.timeout_s
        started = time.monotonic()
        try:
            with self.opener.open(request, timeout=timeout) as response:
                response.read(MAX_ANSWER)
                status = response.status
        except HTTPError as exc:
            exc.close()
            raise DeliveryFailed(f"the receiver answered HTTP {exc.code} "
                                 f"{exc.reason}".strip()) from None
        except URLError as exc:
            reason = exc.reason
            if isinstance(reason, TimeoutError):
                raise DeliveryFailed(f"no connection within {timeout:g} s") from None
            reason = getattr(reason, "strerror", None) or reason
            raise DeliveryFailed(f"cannot reach the receiver: {reason}") from None
        except TimeoutError:
            raise DeliveryFailed(f"no answer within {timeout:g} s") from None
        except (OSError, http.client.HTTPException, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            raise DeliveryFailed(f"the receiver failed: {reason}") from None
        if not 200 <= status < 300:
            raise DeliveryFailed(f"the receiver answered HTTP {status}")
        return f"HTTP {status} in {1000 * (time.monotonic() - started):.0f} ms"
