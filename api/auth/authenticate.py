"""The one place that decides who is calling, for HTTP and WebSocket alike.

A bearer token is verified (signature, pinned algorithm, every claim), then
checked against the session row: it exists, its token generation is current,
and its state permits the purpose. Which states permit what is not written
here: every session state declares its :class:`~sessionflow.lifecycle.Access`,
and :func:`refusal` turns that into the error the caller gets. A WebSocket
ticket is spent atomically and stands for the access token it was obtained
with: same state rule, same expiry. Logout, revocation and refresh therefore
take effect at once, not when the token expires. Due timers fire before the
check, so an idle session is seen as expired the moment its timeout passes.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from sessionflow.api.auth.tokens import ANONYMOUS_TYPE, AccessClaims, AccessTokens
from sessionflow.api.errors import AuthError, InvalidCredentials, NotConnectable
from sessionflow.api.touches import Touches
from sessionflow.lifecycle import SESSION, Access, Definition, access
from sessionflow.persistence import SESSIONS, InstanceNotFound, RowCache, Snapshot, TransitionService, Tx, credentials

T = TypeVar("T")
TOUCH_EVERY = timedelta(seconds=60)  # at most one idle-timer write per session per minute


class WriteNeeded(Exception):
    """Raised by a read-only authentication whose answer needs a write first: a due timer to fire, or an
    idle touch that cannot wait for the next batch. The caller runs it again where it may write."""


class Purpose(enum.StrEnum):
    """What the caller wants to do with the session, which decides the states its credentials work in."""

    USE = "use"  # read it, get a WebSocket ticket, call the API: the session must be usable
    CONNECT = "connect"  # open or keep a WebSocket: usable, and never with an anonymous token
    FIRE = "fire"  # fire an event (logout, revoke): any session that has not ended; its machine decides


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a session holder, through an access token or (before login) an anonymous token.

    ``snapshot`` is the session row as authentication read it (None for a ticket), so a route about the
    caller's own session answers from it instead of reading the row again.
    """

    session_id: uuid.UUID
    user_id: uuid.UUID | None
    state: str
    version: int
    anonymous: bool
    token_expires_at: int
    token_generation: int | None = None  # of the access token presented; None for tickets and anonymous tokens
    snapshot: Snapshot | None = field(default=None, compare=False, repr=False)


def refusal(state: str, definition: Definition = SESSION) -> AuthError | None:
    """Why the holder of a session in ``state`` is refused, from the state's declared access; None if usable."""
    match access(state, definition):
        case Access.USABLE:
            return None
        case Access.LOGIN_PENDING:
            return NotConnectable(f"the session is {state}: finish login first", code="session_not_connectable")
        case Access.REFRESHABLE:
            return InvalidCredentials("the session expired from inactivity; refresh it", code="session_expired")
        case Access.REVOKED:
            return InvalidCredentials("the session was revoked; log in again", code="session_revoked")
        case Access.ENDED:
            return InvalidCredentials("the session is closed; log in again", code="session_closed")


def require(state: str, purpose: Purpose, definition: Definition = SESSION) -> None:
    """Raise the state's refusal unless a session in ``state`` serves ``purpose``."""
    refused = refusal(state, definition)
    if refused is None or (purpose is Purpose.FIRE and state not in definition.terminal):
        return
    raise refused


class Authenticator:
    def __init__(
        self,
        service: TransitionService,
        tokens: AccessTokens,
        *,
        idle_timeout: timedelta,
        rows: RowCache | None = None,
    ) -> None:
        self.service = service
        self.tokens = tokens
        self.idle_timeout = idle_timeout
        self.rows = rows  # SQLite: read-only authentication reads sessions through it
        self.touches: Touches | None = None  # set by a running app: idle touches leave the request path

    def defer_touches(self, touches: Touches) -> None:
        """Write idle-timer touches in ``touches``' batches instead of in the request that earned them."""
        self.touches = touches

    def bearer(self, authorization: str | None, purpose: Purpose, *, may_write: bool = True) -> Principal:
        """Authenticate an ``Authorization: Bearer <token>`` header value (``may_write``: see :meth:`token`)."""
        return self.token(self.bearer_token(authorization), purpose, may_write=may_write)

    def bearer_token(self, authorization: str | None) -> str:
        """The token of an ``Authorization: Bearer <token>`` header value, unchecked."""
        if not authorization:
            raise InvalidCredentials(
                "no credentials: send Authorization: Bearer <access token>", code="credentials_missing"
            )
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise InvalidCredentials(
                "the Authorization header must be 'Bearer <access token>'", code="credentials_missing"
            )
        return token.strip()

    def token(self, token: str, purpose: Purpose, *, may_write: bool = True) -> Principal:
        """The principal ``token`` stands for, or the refusal. With ``may_write`` false nothing is written:
        :class:`WriteNeeded` is raised instead when the answer depends on a write (a due timer, an urgent touch).
        """
        claims = self.tokens.verify(token)
        snapshot = _named(lambda: self.session(claims.session_id, may_write=may_write))

        def touch() -> None:
            if not may_write:
                raise WriteNeeded
            self.service.touch(SESSION.name, snapshot.id)

        return self._principal(token, claims, snapshot, purpose, touch)

    def holder(self, tx: Tx, token: str, purpose: Purpose) -> Principal:
        """:meth:`token`, inside ``tx``: for a request that goes on to act on the token's own session in it.

        The session row is read, locked, by the transaction, whose event on it then starts from that read
        instead of reading it again; a logout reads it once, not twice. The check and the event see the
        same row, with nothing committed between them. Due timers fire in ``tx``, and a refusal rolls
        them back with it (the next read fires them again).
        """
        claims = self.tokens.verify(token)
        snapshot = _named(lambda: tx.snapshot(SESSIONS, claims.session_id))

        def touch() -> None:
            tx.touch(SESSIONS, snapshot.id)

        return self._principal(token, claims, snapshot, purpose, touch)

    def _principal(
        self, token: str, claims: AccessClaims, snapshot: Snapshot, purpose: Purpose, touch: Callable[[], None]
    ) -> Principal:
        """Check the verified ``token`` against its session row; ``touch()`` writes an idle touch now."""
        row = snapshot.row
        if claims.typ == ANONYMOUS_TYPE:
            stored = row.get("anonymous_token_hash")
            if snapshot.state != SESSION.initial or stored is None or stored != credentials.token_hash(token):
                raise InvalidCredentials("the anonymous token is no longer valid", code="token_superseded")
            if purpose is Purpose.CONNECT:
                raise NotConnectable(
                    "the session is anonymous: log in before connecting", code="session_not_connectable"
                )
            return Principal(
                snapshot.id, None, snapshot.state, snapshot.version, True, claims.expires_at, snapshot=snapshot
            )
        if row.get("user_id") != claims.user_id:
            raise InvalidCredentials("the token does not match its session", code="token_invalid")
        require(snapshot.state, purpose)
        if row.get("token_generation") != claims.generation:
            raise InvalidCredentials("the token was superseded by a newer one; use the latest", code="token_superseded")
        self._touch(snapshot.id, snapshot.timers.get("idle"), touch)
        return Principal(
            snapshot.id,
            claims.user_id,
            snapshot.state,
            snapshot.version,
            False,
            claims.expires_at,
            token_generation=claims.generation,
            snapshot=snapshot,
        )

    def session(self, session_id: uuid.UUID, *, may_write: bool = True) -> Snapshot:
        """The session as stored, its due timers fired first; with ``may_write`` false, :class:`WriteNeeded`
        instead of firing them, and the row as the row cache kept it if nothing has committed since."""
        snapshot = self.kept(
            session_id, lambda: self.service.get(SESSION.name, session_id, fire_due=may_write), may_write
        )
        if not may_write and snapshot.next_due is not None and snapshot.next_due <= self.service.clock.now():
            raise WriteNeeded
        return snapshot

    def kept(self, key: Hashable, read: Callable[[], T], may_write: bool) -> T:
        """``read()``; on a read-only pass, what it gave since the last commit if the row cache kept it
        (persistence/rowcache.py)."""
        if may_write or self.rows is None:
            return read()
        return self.rows.get(key, read)

    def ticket(self, ticket: str) -> Principal:
        """Spend a WebSocket ticket; the principal's expiry is that of the access token behind the ticket."""
        if not ticket.startswith(credentials.TICKET_PREFIX) or len(ticket) > 128:
            raise InvalidCredentials("that is not a ticket", code="ticket_invalid")
        with self.service.transaction() as tx:
            redeemed = credentials.consume_ticket(tx, ticket)
        if redeemed.status is credentials.TicketStatus.EXPIRED:
            raise InvalidCredentials("the ticket expired before use; get a new one", code="ticket_expired")
        session_id = redeemed.session_id
        if redeemed.status is not credentials.TicketStatus.VALID or session_id is None:
            raise InvalidCredentials("unknown or already used ticket", code="ticket_invalid")
        now = self.service.clock.now()
        # Tickets issued before migration 0002 do not record it: a whole access-token lifetime, as then.
        expires = redeemed.credential_expires_at or now + self.tokens.ttl
        if expires <= now:
            raise InvalidCredentials(
                "the access token this ticket was obtained with has expired; refresh, then get a new ticket",
                code="token_expired",
            )
        snapshot = self.service.get(SESSION.name, session_id)
        require(snapshot.state, Purpose.CONNECT)
        # Tickets issued before migration 0003 do not record it, and are not checked.
        if redeemed.token_generation is not None and snapshot.row.get("token_generation") != redeemed.token_generation:
            raise InvalidCredentials(
                "the ticket was obtained with a token a refresh has superseded; get a new ticket",
                code="token_superseded",
            )
        user_id = snapshot.row.get("user_id")
        return Principal(session_id, user_id, snapshot.state, snapshot.version, False, int(expires.timestamp()))

    def _touch(self, session_id: uuid.UUID, idle_due: object, touch: Callable[[], None]) -> None:
        """Authenticated use is activity: push the idle timeout back, at most once a minute.

        A running app defers the write to this worker's next batch (:class:`~sessionflow.api.touches.Touches`),
        unless the timeout is so close that the batch might come after it: then it is written now.
        """
        if not isinstance(idle_due, datetime):
            return
        left = idle_due - self.service.clock.now()
        if left >= self.idle_timeout - TOUCH_EVERY:
            return
        if self.touches is not None and left > self.touches.safe_margin:
            self.touches.note(session_id)
        else:
            touch()


def _named(read: Callable[[], Snapshot]) -> Snapshot:
    """The session row a token names, read by ``read()``; a refusal if there is none."""
    try:
        return read()
    except InstanceNotFound:
        raise InvalidCredentials("the token names no session", code="session_unknown") from None
