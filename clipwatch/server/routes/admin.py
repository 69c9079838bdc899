"""/api/users and /api/settings: the admin's side (operators' logins, alert rules).

Changes are applied at once and written back to the config file, like cameras. The last
admin cannot be removed or demoted while no admin API token exists, so an installation is
never locked out of its own settings.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from clipwatch.config import ACCOUNT_NAME_PATTERN, AlertConfig, UserAccount, one_line
from clipwatch.server.auth import Admin, hash_password
from clipwatch.server.deps import ServiceDep

router = APIRouter(prefix="/api", tags=["admin"])
UserName = Annotated[str, Path(pattern=ACCOUNT_NAME_PATTERN)]


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=ACCOUNT_NAME_PATTERN)
    password: str = Field(min_length=8, max_length=256)
    role: Literal["viewer", "admin"] = "viewer"


class UserChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    password: str | None = Field(None, min_length=8, max_length=256)
    role: Literal["viewer", "admin"] | None = None


class SettingsChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    alerts: dict[str, Any] | None = None


def _user(service, name: str) -> UserAccount:
    for user in service.config.auth.users:
        if user.name == name:
            return user
    raise HTTPException(status_code=404, detail=f"no user {name!r}")


def _keeps_an_admin(service, without: str) -> bool:
    auth = service.config.auth
    return any(t.role == "admin" for t in auth.tokens) or any(
        u.role == "admin" and u.name != without for u in auth.users)


@router.get("/users")
def list_users(service: ServiceDep, _: Admin) -> list[dict[str, str]]:
    return [{"name": u.name, "role": u.role} for u in service.config.auth.users]


@router.post("/users", status_code=201)
def add_user(body: NewUser, service: ServiceDep, _: Admin) -> dict[str, str]:
    with service.lock:
        if any(u.name == body.name for u in service.config.auth.users):
            raise HTTPException(status_code=409, detail=f"user {body.name!r} already exists")
        service.config.auth.users.append(
            UserAccount(name=body.name, password=hash_password(body.password), role=body.role))
        service.persist()
    return {"name": body.name, "role": body.role}


@router.patch("/users/{name}")
def change_user(name: UserName, body: UserChange, service: ServiceDep,
                _: Admin) -> dict[str, str]:
    with service.lock:
        user = _user(service, name)
        if body.role == "viewer" and user.role == "admin" and not _keeps_an_admin(service, name):
            raise HTTPException(status_code=409, detail="this is the last admin")
        if body.password is not None:
            user.password = hash_password(body.password)
        if body.role is not None:
            user.role = body.role
        service.persist()
        service.auth.revoke(name)  # sessions carry the old role or password: sign in again
    return {"name": user.name, "role": user.role}


@router.delete("/users/{name}", status_code=204)
def remove_user(name: UserName, service: ServiceDep, _: Admin) -> None:
    with service.lock:
        user = _user(service, name)
        if user.role == "admin" and not _keeps_an_admin(service, name):
            raise HTTPException(status_code=409, detail="this is the last admin")
        service.config.auth.users.remove(user)
        service.persist()
        service.auth.revoke(name)


@router.get("/settings")
def get_settings(service: ServiceDep, _: Admin) -> dict[str, Any]:
    return {"alerts": service.config.alerts.model_dump()}


@router.patch("/settings")
def change_settings(body: SettingsChange, service: ServiceDep, _: Admin) -> dict[str, Any]:
    with service.lock:
        if body.alerts is not None:
            try:
                rules = AlertConfig.model_validate(service.config.alerts.model_dump()
                                                   | body.alerts)
            except ValidationError as exc:
                raise HTTPException(status_code=422, detail=f"alerts.{one_line(exc)}") \
                    from None
            # Same object everywhere (every camera's tracker reads it): change it in place,
            # so the new rules apply from the next frame on.
            for field, value in rules.model_dump().items():
                setattr(service.config.alerts, field, value)
            service.persist()
    return {"alerts": service.config.alerts.model_dump()}
