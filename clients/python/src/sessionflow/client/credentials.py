"""Token keeping: the access token stays fresh, and a refresh token is never presented twice.

Tokens are refreshed at ``refresh_at`` of their life whatever else is going
on, after an expiry the server reported, and on ``token_expiring`` (followed
by ``reauth`` on the open connection). One refresh runs at a time; a reused
refresh token would make the server revoke the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from sessionflow.client.core import Core
from sessionflow.client.errors import Refused
from sessionflow.client.records import Stopped
from sessionflow.client.refusals import problem
from sessionflow.lifecycle import Actor
from sessionflow.lifecycle.client import ClientEvent, ClientState

E = ClientEvent
S = ClientState


@dataclass
class Tokens:
    access: str
    refresh: str
    lifetime: float
    expires_at: float  # event-loop time
    refresh_due: float
    generation: int


class Rotation(enum.Enum):
    ROTATED = "rotated"
    ALREADY = "already"  # another task rotated them meanwhile
    FAILED = "failed"  # for now: the server is busy or failing


class TokenKeeping(Core):
    """The client's tokens, rotated one at a time and kept fresh while the client runs."""

    session_state: str | None
    _refresh_at: float
    _tokens: Tokens | None
    _refresh_lock: asyncio.Lock
    _reauths: set[asyncio.Task[Any]]

    def _take_tokens(self, body: Mapping[str, Any]) -> None:
        now = asyncio.get_running_loop().time()
        lifetime = float(body["expires_in"])
        generation = self._tokens.generation + 1 if self._tokens is not None else 0
        self._tokens = Tokens(
            str(body["access_token"]),
            str(body["refresh_token"]),
            lifetime,
            now + lifetime,
            now + self._refresh_at * lifetime,
            generation,
        )
        self.session_id = str(body["session_id"])
        self.session_state = str(body["state"])
        changed, self._token_changed = self._token_changed, asyncio.Event()
        changed.set()

    async def _rotate(self, seen: int) -> Rotation:
        """Refresh unless someone already did since generation ``seen``.

        One refresh at a time, and a refresh token is never presented twice
        (a reused one makes the server revoke the session). Raises
        :class:`Refused` when no retry can help and ``httpx.TransportError``
        when the server is unreachable.
        """
        async with self._refresh_lock:
            assert self._tokens is not None
            if self._tokens.generation != seen:
                return Rotation.ALREADY
            return await self._rotate_locked()

    async def _rotate_locked(self) -> Rotation:
        assert self._tokens is not None
        response = await self._http("POST", "/api/auth/refresh", body={"refresh_token": self._tokens.refresh})
        if response.status_code == 200:
            self._take_tokens(response.json())
            return Rotation.ROTATED
        if response.status_code == 429 or response.status_code >= 500:
            return Rotation.FAILED
        status, problem_code = response.status_code, problem(response)
        raise Refused(Stopped("end", f"refresh refused ({problem_code or status})", None, status, problem_code))

    async def _refresh_after_expiry(self) -> None:
        assert self._tokens is not None
        try:
            rotation = await self._rotate(self._tokens.generation)
            reason = "" if rotation is not Rotation.FAILED else "refresh failed for now"
        except httpx.TransportError as exc:
            rotation, reason = Rotation.FAILED, f"server unreachable ({type(exc).__name__})"
        except Refused as refused:
            if self.state is S.REFRESHING:
                self._finish(E.END, Actor.SERVER, refused.stopped)
            return
        if self.state is S.REFRESHING:
            event = E.DROP if rotation is Rotation.FAILED else E.REFRESHED
            self._fire(event, Actor.SERVER, reason=reason, delay=self._wait())

    async def _refresh_in_place(self) -> bool:
        """Refresh without leaving the state (active, connected, reconnecting), then reauth an open connection."""
        assert self._tokens is not None
        try:
            rotation = await self._rotate(self._tokens.generation)
        except httpx.TransportError:
            return False
        except Refused as refused:
            if self.state not in (S.STOPPED, S.LOGGING_OUT):
                self._finish(E.END, Actor.SERVER, refused.stopped)
                await self._close_socket(1000, "refresh refused")
            return False
        if rotation is Rotation.FAILED:
            return False
        if rotation is Rotation.ROTATED and self.state in (S.ACTIVE, S.CONNECTED, S.RECONNECTING):
            self._fire(E.REFRESHED, Actor.SERVER)
        await self._reauth()
        return True

    async def _reauth(self) -> None:
        socket = self._socket
        if self.state is S.CONNECTED and socket is not None and self._tokens is not None:
            message = {"type": "reauth", "access_token": self._tokens.access}
            await self._send(socket, message, "reauth (fresh access token)")

    def _expiring(self, expires_in: float) -> None:
        """token_expiring: reauth with a token that outlives the connection's credential, refreshing first if needed.

        A warning about a credential as fresh as a new token would be (one
        just reauthenticated) needs nothing: refreshing cannot do better.
        """
        tokens = self._tokens
        assert tokens is not None
        if expires_in >= tokens.lifetime - 1:
            self._fire(
                E.TOKEN_EXPIRING, Actor.SERVER, reason="nothing to do: the credential is as fresh as a new token"
            )
            return
        fresher = tokens.expires_at > asyncio.get_running_loop().time() + expires_in + 1
        self._fire(E.TOKEN_EXPIRING, Actor.SERVER, reason="reauth" if fresher else "refresh, then reauth")
        task = asyncio.create_task(self._reauth() if fresher else self._refresh_in_place())
        self._reauths.add(task)
        task.add_done_callback(self._reauths.discard)

    async def _keep_fresh(self) -> None:
        """Refresh at ``refresh_at`` of the token's life, whatever else is going on."""
        loop = asyncio.get_running_loop()
        while self.state is not S.STOPPED and self._tokens is not None:
            wait = self._tokens.refresh_due - loop.time()
            if wait > 0:
                changed = self._token_changed
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), wait)
                continue
            if self.state in (S.ACTIVE, S.CONNECTED, S.RECONNECTING) and await self._refresh_in_place():
                continue
            # Connecting, refreshing, or the server is unreachable: look again shortly.
            self._tokens.refresh_due = loop.time() + min(5.0, max(0.5, (self._tokens.expires_at - loop.time()) / 4))

    async def _logout_request(self) -> httpx.Response:
        """POST logout with the current access token: after any refresh in flight, and refreshed if it expired."""
        async with self._refresh_lock:
            assert self._tokens is not None
            response = await self._http("POST", "/api/auth/logout", token=self._tokens.access)
            expired = response.status_code == 401 and problem(response) == "token_expired"
            if expired and await self._rotate_locked() is Rotation.ROTATED:
                response = await self._http("POST", "/api/auth/logout", token=self._tokens.access)
            return response
