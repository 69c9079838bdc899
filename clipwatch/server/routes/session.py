"""/api/login, /api/logout, /api/me: operator logins for the viewer (a session cookie)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from clipwatch.server.auth import SESSION_COOKIE, Viewer, public
from clipwatch.server.deps import ServiceDep
from clipwatch.server.schemas import Account, ErrorBody, Me

router = APIRouter(prefix="/api", tags=["session"])


class Login(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


@router.post("/login", responses={
    400: {"model": ErrorBody, "description": "auth is off: there is nothing to sign in to"},
    401: {"model": ErrorBody, "description": "wrong name or password"}})
@public
def login(body: Login, request: Request, response: Response, service: ServiceDep) -> Account:
    """Sign in: sets an HttpOnly, SameSite=Strict session cookie."""
    if not service.auth.enabled:
        raise HTTPException(status_code=400, detail="auth is off: there is nothing to sign in to")
    session = service.auth.login(body.name, body.password)
    if session is None:
        raise HTTPException(status_code=401, detail="wrong name or password")
    response.set_cookie(SESSION_COOKIE, session, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https",
                        max_age=int(service.config.auth.session_hours * 3600), path="/")
    principal = service.auth.identify_session(session)
    return Account(name=principal.name, role=principal.role)


@router.post("/logout", status_code=204)
@public
def logout(request: Request, response: Response, service: ServiceDep) -> None:
    """End this session (if any) and clear its cookie."""
    session = request.cookies.get(SESSION_COOKIE)
    if session:
        service.auth.logout(session)
    response.delete_cookie(SESSION_COOKIE, path="/")


@router.get("/me")
def me(principal: Viewer, service: ServiceDep) -> Me:
    return Me(name=principal.name, role=principal.role, auth=service.auth.enabled)
