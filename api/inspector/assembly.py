"""What the application runs for the inspector, assembled once by ``create_app``: nothing when it is off."""

from __future__ import annotations

from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from litestar.types import ControllerRouterHandler

from sessionflow.api.context import AppContext
from sessionflow.api.inspector.feed import Feeds
from sessionflow.api.inspector.refusals import RefusalLog
from sessionflow.api.inspector.routes import route_handlers


@dataclass
class Inspector:
    enabled: bool
    feeds: Feeds
    refusals: RefusalLog

    @classmethod
    def install(cls, ctx: AppContext) -> Inspector:
        """The inspector for this app; when on, refused events are queued for the refusal log from now."""
        inspector = cls(ctx.settings.inspector, Feeds(), RefusalLog(ctx.db, ctx.service.clock))
        if inspector.enabled:
            ctx.service.hooks.on_refused.append(inspector.refusals)
        return inspector

    def background(self) -> list[Coroutine[Any, Any, None]]:
        """What runs for the app's lifetime: the refusal log's writer."""
        return [self.refusals.run()] if self.enabled else []

    def routes(self) -> list[ControllerRouterHandler]:
        return route_handlers() if self.enabled else []
