"""Who may do what: API tokens for integrations, logins for operators, two roles.

- Tokens are random (32 bytes, URL-safe) and stored only as their SHA-256 (a token has the
  entropy a password lacks, so a fast hash is enough and every request can check it).
- Passwords are stored as PBKDF2-SHA256 with a random salt and 200,000 iterations; they are
  checked only at login, which then hands out a session cookie (HttpOnly, SameSite=Strict).
- Roles: `viewer` (watch, acknowledge) and `admin` (also cameras and settings).

With no tokens and no users configured, auth is off and every caller is an admin; the
server then refuses to listen anywhere but loopback (see `run.check_bind`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from starlette.requests import HTTPConnection

from clipwatch.config import AuthConfig

SESSION_COOKIE = "clipwatch_session"
PBKDF2_ITERATIONS = 200_000
ROLES = ("viewer", "admin")


def new_token() -> str:
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def hash_password(password: str, iterations: int = PBKDF2_ITERATIONS) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"pbkdf2_sha256${iterations}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, iterations, salt, digest = stored.split("$")
        if scheme != "pbkdf2_sha256":
            return False
        ours = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt),
                                   int(iterations))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(ours.hex(), digest)


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

    @property
    def enabled(self) -> bool:
        return bool(self.config.tokens or self.config.users)

    def login(self, name: str, password: str) -> str | None:
        """A new session id for valid credentials, else None (the same time either way)."""
        user = next((u for u in self.config.users if u.name == name), None)
        # Check a password even for an unknown user, so timing does not tell names apart.
        stored = user.password if user else _DUMMY_HASH
        if not verify_password(password, stored) or user is None:
            return None
        session = secrets.token_urlsafe(32)
        expires = time.time() + self.config.session_hours * 3600
        with self._lock:
            self._sessions[session] = (Principal(user.name, user.role), expires)
        return session

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


_DUMMY_HASH = hash_password("not a password", iterations=PBKDF2_ITERATIONS)


def _authenticator(connection: HTTPConnection) -> Authenticator:
    return connection.app.state.service.auth


def current_principal(request: Request) -> Principal:
    principal = _authenticator(request).identify(request)
    if principal is None:
        raise HTTPException(status_code=401, detail="sign in or send a valid API token",
                            headers={"WWW-Authenticate": "Bearer"})
    return principal


def require_admin(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    if not principal.is_admin:
        raise HTTPException(status_code=403, detail="this needs the admin role")
    return principal


Viewer = Annotated[Principal, Depends(current_principal)]
Admin = Annotated[Principal, Depends(require_admin)]
