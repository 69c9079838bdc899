"""Who may do what: API tokens for integrations, logins for operators, two roles.

- Tokens are random (32 bytes, URL-safe) and stored only as their SHA-256 (a token has the
  entropy a password lacks, so a fast hash is enough and every request can check it).
- Passwords are stored as argon2id (passwords.py; PBKDF2 hashes of earlier versions are
  accepted and replaced at the next sign-in); they are checked only at login, by one
  low-priority thread with a short queue, after the failed-sign-in limits (login_limits.py)
  let the attempt through. A login hands out a session cookie (HttpOnly, SameSite=Strict).
- Roles: `viewer` (watch, acknowledge) and `admin` (also cameras and settings).

Signing in is the default: `create_app` makes `authenticated` a dependency of every route,
and a route is open to anonymous callers only when its endpoint is marked `@public` (health,
readiness, login, logout, the viewer's page). The websocket is marked public too because it
checks the same credentials itself, after the handshake, so it can close with 4401.

With no tokens and no users configured, auth is off and every caller is an admin; the
server then refuses to listen anywhere but loopback (see `run.check_exposure`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any, NamedTuple, TypeVar

from fastapi import Depends, HTTPException
from fastapi.routing import APIRoute
from starlette.requests import HTTPConnection
from starlette.routing import BaseRoute, WebSocketRoute

from clipwatch.config import AuthConfig, UserAccount
from clipwatch.server.login_limits import LoginLimiter
from clipwatch.server.passwords import PasswordChecker
from clipwatch.server.passwords import hash_password as hash_password  # noqa: F401 (for callers)
from clipwatch.server.passwords import verify_password as verify_password  # noqa: F401
from clipwatch.server.schemas import ErrorBody

SESSION_COOKIE = "clipwatch_session"
ROLES = ("viewer", "admin")


def new_token() -> str:
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class LoginResult(NamedTuple):
    session: str | None  # None: wrong name or password
    rehash: tuple[str, str] | None  # (stored, new): an outdated hash to replace in the config


@dataclass(frozen=True)
class Principal:
    name: str
    role: str  # viewer | admin

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


ANONYMOUS_ADMIN = Principal("local", "admin")  # auth off: loopback only


class Authenticator:
    """Checks bearer tokens and session cookies against the config; holds the sessions."""

    def __init__(self, config: AuthConfig) -> None:
        self.config = config
        self._sessions: dict[str, tuple[Principal, float]] = {}
        self._lock = threading.Lock()
        self.limiter = LoginLimiter(config.login)
        self.checker = PasswordChecker(config.login.check_queue)

    @property
    def enabled(self) -> bool:
        return bool(self.config.tokens or self.config.users)

    async def login(self, name: str, password: str, address: str) -> LoginResult:
        """Check a sign-in: a session id for valid credentials, else None (after the same
        work either way). Raises TooManyAttempts while the name or the address must wait,
        HasherBusy while the password checker's queue is full (neither checks anything)."""
        user = self._user(name)
        known = user is not None
        self.limiter.begin(name, address, known)
        verdict: bool | None = None
        try:
            # An unknown name is checked against a dummy hash: the timing tells no names apart.
            stored = user.password if user else None
            checked = await self.checker.check(password, stored)
            verdict = checked.ok and known
        finally:
            self.limiter.end(name, address, known, ok=verdict)
        if not verdict or user is None or self._user(name) is not user \
                or user.password != stored:  # removed or changed while it was being checked
            return LoginResult(None, None)
        session = secrets.token_urlsafe(32)
        expires = time.time() + self.config.session_hours * 3600
        with self._lock:
            self._sessions[session] = (Principal(user.name, user.role), expires)
        return LoginResult(session, (user.password, checked.rehashed) if checked.rehashed
                           else None)

    def _user(self, name: str) -> UserAccount | None:
        return next((u for u in self.config.users if u.name == name), None)

    def identify_session(self, session: str) -> Principal | None:
        with self._lock:
            found = self._sessions.get(session)
            if found and found[1] > time.time():
                return found[0]
            self._sessions.pop(session, None)
        return None

    def revoke(self, name: str) -> None:
        """End every session of this user (removed, demoted or given a new password)."""
        with self._lock:
            for session in [s for s, (p, _) in self._sessions.items() if p.name == name]:
                del self._sessions[session]

    def logout(self, session: str) -> None:
        with self._lock:
            self._sessions.pop(session, None)

    def identify(self, connection: HTTPConnection) -> Principal | None:
        if not self.enabled:
            return ANONYMOUS_ADMIN
        header = connection.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            digest = hash_token(header[7:].strip())
            for token in self.config.tokens:
                if hmac.compare_digest(token.sha256, digest):
                    return Principal(token.name, token.role)
            return None
        session = connection.cookies.get(SESSION_COOKIE)
        return self.identify_session(session) if session else None


def _authenticator(connection: HTTPConnection) -> Authenticator:
    return connection.app.state.service.auth


F = TypeVar("F", bound=Callable[..., Any])
_PUBLIC = "__clipwatch_public__"


def public(endpoint: F) -> F:
    """Mark a route's endpoint as open to anonymous callers (the default is signed in)."""
    setattr(endpoint, _PUBLIC, True)
    return endpoint


def is_public(endpoint: object) -> bool:
    return getattr(endpoint, _PUBLIC, False)


def current_principal(connection: HTTPConnection) -> Principal:
    principal = _authenticator(connection).identify(connection)
    if principal is None:
        raise HTTPException(status_code=401, detail="sign in or send a valid API token",
                            headers={"WWW-Authenticate": "Bearer"})
    return principal


def require_admin(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    if not principal.is_admin:
        raise HTTPException(status_code=403, detail="this needs the admin role")
    return principal


def authenticated(connection: HTTPConnection) -> None:
    """The app-wide dependency: a 401 unless the caller is signed in or the route is public."""
    if not is_public(connection.scope.get("endpoint")):
        current_principal(connection)


Viewer = Annotated[Principal, Depends(current_principal)]  # for routes that use the principal
Admin = Annotated[Principal, Depends(require_admin)]


class RouteInfo(NamedTuple):
    path: str  # as the app serves it (with its router's prefix), as in OpenAPI's paths
    methods: frozenset[str]  # HTTP methods; {"WEBSOCKET"} for a websocket; none for a mount
    endpoint: Any  # what `@public` marks
    route: BaseRoute  # as declared: an APIRoute carries its dependencies
    in_schema: bool  # listed in the OpenAPI document


def routes_of(routes: Iterable[BaseRoute]) -> list[RouteInfo]:
    """Every route an app serves, included routers' ones too, with the path it serves."""
    try:  # newer FastAPI keeps included routers nested in app.routes
        from fastapi.routing import iter_route_contexts
        contexts: list[tuple[Any, BaseRoute]] = [
            (c, c.original_route) for c in iter_route_contexts(list(routes))]
    except ImportError:  # older FastAPI copies their routes into app.routes
        contexts = [(r, r) for r in routes]
    found = []
    for context, route in contexts:
        api = isinstance(route, APIRoute)
        methods = {"WEBSOCKET"} if isinstance(route, WebSocketRoute) else \
            getattr(context, "methods", None) or ()
        found.append(RouteInfo(context.path_format if api else context.path, frozenset(methods),
                               getattr(context, "endpoint", None), route,
                               api and bool(context.include_in_schema)))
    return found


def _needs_admin(route: APIRoute) -> bool:
    stack = list(route.dependant.dependencies)
    while stack:
        dependant = stack.pop()
        if dependant.call is require_admin:
            return True
        stack.extend(dependant.dependencies)
    return False


def document(openapi: dict[str, Any], routes: Iterable[BaseRoute]) -> None:
    """Show the default in an OpenAPI document: the two ways to sign in as security schemes
    that every operation needs, `security: []` on public ones, and their 401 and 403."""
    components = openapi.setdefault("components", {})
    components.setdefault("securitySchemes", {}).update({
        "token": {"type": "http", "scheme": "bearer",
                  "description": "an API token (`clipwatch auth token`)"},
        "session": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE,
                    "description": "the cookie `POST /api/login` sets"},
    })
    openapi["security"] = [{"token": []}, {"session": []}]
    components.setdefault("schemas", {}).setdefault(
        "ErrorBody", ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}"))
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    for info in routes_of(routes):
        if not info.in_schema:
            continue
        for method in info.methods:
            operation = openapi["paths"][info.path][method.lower()]
            if is_public(info.endpoint):
                operation["security"] = []
                continue
            answers = operation.setdefault("responses", {})
            answers.setdefault("401", {"description": "not signed in (when auth is configured)",
                                       "content": error})
            if _needs_admin(info.route):
                answers.setdefault("403", {"description": "this needs the admin role",
                                           "content": error})
