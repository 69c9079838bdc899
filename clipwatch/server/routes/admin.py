"""/api/users and /api/settings: the admin's side (operators' logins, alert rules).

Changes are applied at once and written back to the config file, like cameras. The last
admin cannot be removed or demoted while no admin API token exists, so an installation is
never locked out of its own settings.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from clipwatch.config import ACCOUNT_NAME_PATTERN, AlertConfig, UserAccount
from clipwatch.server.auth import Admin, hash_password
from clipwatch.server.deps import ServiceDep
from clipwatch.server.errors import LastAdmin, UnknownUser, UserExists, responses, validated
from clipwatch.server.schemas import Account, Role, Settings
from clipwatch.server.service import Service

router = APIRouter(prefix="/api", tags=["admin"])
UserName = Annotated[str, Path(pattern=ACCOUNT_NAME_PATTERN)]


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=ACCOUNT_NAME_PATTERN)
    password: str = Field(min_length=8, max_length=256)
    role: Role = "viewer"


class UserChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    password: str | None = Field(None, min_length=8, max_length=256)
    role: Role | None = None


class SettingsChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    alerts: dict[str, Any] | None = None


def _user(service: Service, name: str) -> UserAccount:
    for user in service.config.auth.users:
        if user.name == name:
            return user
    raise UnknownUser(f"no user {name!r}")


def _keeps_an_admin(service: Service, without: str) -> bool:
    auth = service.config.auth
    return any(t.role == "admin" for t in auth.tokens) or any(
        u.role == "admin" and u.name != without for u in auth.users)


def _account(user: UserAccount) -> Account:
    return Account(name=user.name, role=user.role)


@router.get("/users")
def list_users(service: ServiceDep, _: Admin) -> list[Account]:
    return [_account(u) for u in service.config.auth.users]


@router.post("/users", status_code=201, responses=responses(UserExists))
def add_user(body: NewUser, service: ServiceDep, _: Admin) -> Account:
    with service.lock:
        if any(u.name == body.name for u in service.config.auth.users):
            raise UserExists(f"user {body.name!r} already exists")
        user = UserAccount(name=body.name, password=hash_password(body.password), role=body.role)
        service.config.auth.users.append(user)
        service.persist()
    return _account(user)


@router.patch("/users/{name}", responses=responses(UnknownUser, LastAdmin))
def change_user(name: UserName, body: UserChange, service: ServiceDep, _: Admin) -> Account:
    """A new password or role ends the user's sessions: they sign in again."""
    with service.lock:
        user = _user(service, name)
        if body.role == "viewer" and user.role == "admin" and not _keeps_an_admin(service, name):
            raise LastAdmin("this is the last admin")
        if body.password is not None:
            user.password = hash_password(body.password)
        if body.role is not None:
            user.role = body.role
        service.persist()
        service.auth.revoke(name)  # sessions carry the old role or password: sign in again
    return _account(user)


@router.delete("/users/{name}", status_code=204, responses=responses(UnknownUser, LastAdmin))
def remove_user(name: UserName, service: ServiceDep, _: Admin) -> None:
    with service.lock:
        user = _user(service, name)
        if user.role == "admin" and not _keeps_an_admin(service, name):
            raise LastAdmin("this is the last admin")
        service.config.auth.users.remove(user)
        service.persist()
        service.auth.revoke(name)


@router.get("/settings")
def get_settings(service: ServiceDep, _: Admin) -> Settings:
    return Settings(alerts=service.config.alerts.model_copy())


@router.patch("/settings")
def change_settings(body: SettingsChange, service: ServiceDep, _: Admin) -> Settings:
    """Alert rules apply from the next frame on and are written back to the config."""
    with service.lock:
        if body.alerts is not None:
            rules = validated(AlertConfig, service.config.alerts.model_dump() | body.alerts,
                              where="alerts.")
            # Same object everywhere (every camera's tracker reads it): change it in place,
            # so the new rules apply from the next frame on.
            for field, value in rules.model_dump().items():
                setattr(service.config.alerts, field, value)
            service.persist()
    return Settings(alerts=service.config.alerts.model_copy())
