"""What request handlers need, built once per app by ``create_app`` and injected as ``ctx``."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency

from sessionflow.api.auth.authenticate import Authenticator, Principal, Purpose
from sessionflow.api.auth.flows import Flows
from sessionflow.api.auth.services import ServiceAuth
from sessionflow.api.errors import Forbidden
from sessionflow.api.settings import Settings
from sessionflow.persistence import Database, TransitionService, users

BEARER = "BearerToken"  # the OpenAPI security scheme of the access token
BEARER_REQUIRED: list[dict[str, list[str]]] = [{BEARER: []}]
"""What a handler or controller that needs the access token declares (``security=BEARER_REQUIRED``)."""

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


@dataclass(frozen=True)
class AppContext:
    settings: Settings
    db: Database
    service: TransitionService
    auth: Authenticator
    flows: Flows
    services: ServiceAuth  # registered services (introspection, the revocation feed)
    schema_head: str  # the migration this code expects, read once at start: probes never touch the scripts

    def principal(self, request: Request[object, object, State], purpose: Purpose = Purpose.USE) -> Principal:
        return self.auth.bearer(request.headers.get("authorization"), purpose)

    def is_admin(self, principal: Principal) -> bool:
        if principal.user_id is None:
            return False
        user = users.by_id(self.db, principal.user_id)
        return bool(user and user.is_admin and user.enabled)

    def require_admin(self, principal: Principal) -> None:
        if not self.is_admin(principal):
            raise Forbidden("this needs the admin role", code="admin_required")


def request_id(request: Request[object, object, State]) -> str:
    """The request's id: the caller's X-Request-ID if well-formed, else one we made (see observability)."""
    value = request.scope.get("state", {}).get("request_id")
    if isinstance(value, str):
        return value
    header = request.headers.get("x-request-id", "")
    return header if _REQUEST_ID.match(header) else uuid.uuid4().hex


Ctx = NamedDependency[AppContext]
"""How a handler asks for the context: ``ctx: Ctx`` (named, explicit dependency injection)."""


def provide_ctx(state: State) -> AppContext:
    ctx: AppContext = state.ctx
    return ctx
