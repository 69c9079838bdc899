"""/api/login, /api/logout, /api/me: operator logins for the viewer (a session cookie).

A sign-in passes the failed-sign-in limits first (429 with Retry-After while its name or
address must wait), then waits its turn at the password checker (503 with Retry-After when
that queue is full): the endpoint is async, so neither a refusal nor a wait holds a thread.
A stored hash of an older kind (PBKDF2) is replaced by argon2id at the user's next successful
sign-in and written back to the config file, as the admin's changes are.
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from clipwatch.errors import ClipwatchError
from clipwatch.server.auth import SESSION_COOKIE, Viewer, public
from clipwatch.server.deps import ServiceDep
from clipwatch.server.login_limits import TooManyAttempts, client_key, retry_after_header
from clipwatch.server.passwords import HasherBusy
from clipwatch.server.schemas import Account, ErrorBody, Me
from clipwatch.server.service import Service

router = APIRouter(prefix="/api", tags=["session"])
log = logging.getLogger(__name__)


class Login(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


def _cookie(request: Request) -> dict:
    """The session cookie's attributes: deleting it must name the same ones."""
    return dict(httponly=True, samesite="strict", secure=request.url.scheme == "https",
                path="/")


@router.post("/login", responses={
    400: {"model": ErrorBody, "description": "auth is off: there is nothing to sign in to"},
    401: {"model": ErrorBody, "description": "wrong name or password"},
    429: {"model": ErrorBody, "description": "too many failed sign-ins for this name or from "
                                             "this address: wait Retry-After seconds"},
    503: {"model": ErrorBody, "description": "too many sign-ins at once: retry after "
                                             "Retry-After seconds"}})
@public
async def login(body: Login, request: Request, response: Response,
                service: ServiceDep) -> Account:
    """Sign in: sets an HttpOnly, SameSite=Strict session cookie."""
    if not service.auth.enabled:
        raise HTTPException(status_code=400, detail="auth is off: there is nothing to sign in to")
    try:
        result = await service.auth.login(body.name, body.password,
                                          client_key(request.client and request.client.host))
    except TooManyAttempts as exc:
        raise HTTPException(status_code=429, detail=str(exc),
                            headers={"Retry-After": retry_after_header(exc.retry_after)}) from None
    except HasherBusy as exc:
        raise HTTPException(status_code=503, detail=str(exc),
                            headers={"Retry-After": retry_after_header(exc.retry_after)}) from None
    if result.session is None:
        raise HTTPException(status_code=401, detail="wrong name or password")
    if result.rehash is not None:
        await asyncio.to_thread(_replace_hash, service, body.name, *result.rehash)
    response.set_cookie(SESSION_COOKIE, result.session,
                        max_age=int(service.config.auth.session_hours * 3600), **_cookie(request))
    principal = service.auth.identify_session(result.session)
    return Account(name=principal.name, role=principal.role)


def _replace_hash(service: Service, name: str, stored: str, new: str) -> None:
    """An outdated hash becomes today's, in the config and its file (unless an admin changed
    it meanwhile). A file that cannot be written keeps the old hash there; it still works."""
    with service.lock:
        user = next((u for u in service.config.auth.users if u.name == name), None)
        if user is None or user.password != stored:
            return
        user.password = new
        try:
            service.persist()
        except ClipwatchError as exc:
            log.warning("%r's password hash was upgraded to argon2id, but not in the config "
                        "file: %s", name, exc)
            return
    log.info("%r's password hash was upgraded to argon2id", name)


@router.post("/logout", status_code=204)
@public
def logout(request: Request, response: Response, service: ServiceDep) -> None:
    """End this session (if any) and clear its cookie."""
    session = request.cookies.get(SESSION_COOKIE)
    if session:
        service.auth.logout(session)
    response.delete_cookie(SESSION_COOKIE, **_cookie(request))


@router.get("/me")
def me(principal: Viewer, service: ServiceDep) -> Me:
    return Me(name=principal.name, role=principal.role, auth=service.auth.enabled)
