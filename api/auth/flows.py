"""Session flows: creating, logging in, refreshing, logging out, revoking, tickets.

Each flow is one transaction through the transition service, so a session
and its credentials change together or not at all. Sessions are created and
credentials issued only here, by the server; login and refresh always issue
fresh credentials and invalidate the old ones (no session fixation), and a
session that ends takes its credentials with it (the store does that, for
every way a session can end).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NoReturn

from sessionflow.api.auth.authenticate import refusal
from sessionflow.api.auth.oidc import OidcVerifier
from sessionflow.api.auth.tokens import ANONYMOUS_TYPE, AccessTokens
from sessionflow.api.errors import AuthError, InvalidCredentials, RateLimited
from sessionflow.api.passwords import verify_password
from sessionflow.api.settings import Settings
from sessionflow.lifecycle import SESSION, Actor, EventRefused, SessionEvent
from sessionflow.persistence import (
    SESSIONS,
    TransitionService,
    Tx,
    UserRecord,
    credentials,
    ratelimits,
    sessions,
    users,
)

E = SessionEvent
# Verified against when the user does not exist, so that unknown users and wrong passwords cost the same.
_DUMMY_HASH = "$argon2id$v=19$m=65536,t=3,p=4$hyUPFzFhL58h8rkf7qODGg$5aHW3e+zrg9Yb/LDw5rpnHXbH2TUqxq0Lq9yUcTz/WY"


@dataclass(frozen=True, slots=True)
class Issued:
    """Fresh credentials for a session, as login and refresh return them."""

    session_id: uuid.UUID
    state: str
    access_token: str
    refresh_token: str
    expires_in: int
    refresh_expires_in: int
    within_grace: bool = False  # a refresh answered from the reuse window (metrics tell them apart)


class Flows:
    def __init__(self, service: TransitionService, access: AccessTokens, settings: Settings) -> None:
        self.service = service
        self.access = access
        self.settings = settings

    # -- anonymous sessions ----------------------------------------------------------

    def create_anonymous(self, *, request_id: str | None) -> tuple[uuid.UUID, str]:
        """A new anonymous session and its token (which only the login upgrade accepts)."""
        session_id = uuid.uuid4()
        token = self.access.issue_anonymous(session_id=session_id, ttl=self.settings.session_login_window)
        with self.service.transaction() as tx:
            tx.create(SESSIONS, session_id, {"anonymous_token_hash": credentials.token_hash(token)})
        return session_id, token

    # -- login -------------------------------------------------------------------------

    def login_password(
        self,
        username: str,
        password: str,
        *,
        client_address: str,
        session_id: uuid.UUID | None = None,
        anonymous_token: str | None = None,
        request_id: str | None = None,
    ) -> Issued:
        """Verify a password and log in. Every failure is the same ``login_failed`` (no user enumeration).

        Only failures count toward the limits (docs/security.md, "Login throttling"): per username and
        client address, per username from everywhere, per client address. A success clears its
        username-and-address count.
        """
        limits = self._password_limits(username, client_address)
        self._check_limits(limits)
        user = users.by_name(self.service.db, username)
        ok = verify_password(user.password_hash if user and user.password_hash else _DUMMY_HASH, password)
        if user is None or not ok or not user.enabled or user.password_hash is None:
            with self.service.transaction() as tx:
                for key, _, window in limits:
                    ratelimits.count_attempt(tx, key, window)
            raise InvalidCredentials("unknown user or wrong password", code="login_failed")
        with self.service.transaction() as tx:
            ratelimits.clear_attempts(tx, limits[0][0])
        return self.login_user(user, session_id=session_id, anonymous_token=anonymous_token, request_id=request_id)

    def login_id_token(
        self,
        verifier: OidcVerifier,
        id_token: str,
        *,
        client_address: str,
        session_id: uuid.UUID | None = None,
        anonymous_token: str | None = None,
        request_id: str | None = None,
    ) -> Issued:
        """Log in with an identity provider's ID token; attempts count against the client address.

        Counted before the token is verified: a token naming a key the JWKS lacks makes the
        verifier fetch the JWKS again, which unlimited attempts would turn on the provider.
        """
        self._count_attempt(None, client_address)
        user = verifier.user_for(id_token)
        return self.login_user(user, session_id=session_id, anonymous_token=anonymous_token, request_id=request_id)

    def login_user(
        self,
        user: UserRecord,
        *,
        session_id: uuid.UUID | None = None,
        anonymous_token: str | None = None,
        request_id: str | None = None,
    ) -> Issued:
        """Create (or upgrade) a session for a verified user: ``authenticate`` then ``activate``."""
        if (session_id is None) != (anonymous_token is None):
            raise InvalidCredentials(
                "upgrading a session needs both session_id and anonymous_token", code="token_invalid"
            )
        if anonymous_token is not None:
            claims = self.access.verify(anonymous_token)
            if claims.typ != ANONYMOUS_TYPE or claims.session_id != session_id:
                raise InvalidCredentials("the anonymous token does not belong to that session", code="token_invalid")
        with self.service.transaction() as tx:
            if session_id is None:
                session_id = tx.create(SESSIONS, uuid.uuid4(), {}).id
            else:
                assert anonymous_token is not None
                if not credentials.anonymous_token_matches(tx, session_id, anonymous_token):
                    raise InvalidCredentials("the anonymous token was already used", code="token_superseded")
            sessions.bind_user(tx, session_id, user.id)
            tx.fire(
                SESSION.name,
                session_id,
                E.AUTHENTICATE,
                actor=Actor.SERVER,
                facts={"credentials_verified": True},
                request_id=request_id,
            )
            current = users.current(tx, user.id)
            held = sessions.count_open_sessions_of(tx, user.id)  # includes this one, now authenticated
            applied = tx.fire(
                SESSION.name,
                session_id,
                E.ACTIVATE,
                actor=Actor.SERVER,
                facts={
                    "user_enabled": bool(current and current.enabled),
                    "under_session_cap": held <= self.settings.max_sessions_per_user,
                },
                request_id=request_id,
            )
            return self._issue(tx, session_id, user.id, applied.to_state)

    # -- refresh -----------------------------------------------------------------------

    def refresh(self, refresh_token: str, *, request_id: str | None = None) -> Issued:
        """Rotate credentials. A refresh token used twice means theft: the session is revoked.

        Twice within ``SESSIONFLOW_REFRESH_REUSE_WINDOW`` by the token the current one replaced is not
        theft but a race (tabs refreshing together, a retry after a lost response): that caller gets
        credentials of the current generation, which leaves every other caller's working, and the
        history row of its ``refresh`` says ``reused_within_grace``.
        """
        if not refresh_token.startswith(credentials.REFRESH_PREFIX) or len(refresh_token) > 128:
            raise InvalidCredentials("that is not a refresh token", code="refresh_token_invalid")
        ended: AuthError | None = None
        Status = credentials.RefreshStatus
        with self.service.transaction() as tx:
            lookup = credentials.use_refresh(tx, refresh_token, reuse_window=self.settings.refresh_reuse_window)
            if lookup.status is Status.UNKNOWN:
                raise InvalidCredentials("unknown refresh token; log in again", code="refresh_token_invalid")
            assert lookup.session_id is not None
            if lookup.status is Status.EXPIRED:
                raise InvalidCredentials("the refresh token expired; log in again", code="refresh_token_invalid")
            if lookup.status is Status.REUSED:
                try:
                    tx.fire(
                        SESSION.name,
                        lookup.session_id,
                        E.REVOKE,
                        actor=Actor.SERVER,
                        detail={"reason": "refresh_token_reuse"},
                        request_id=request_id,
                    )
                except EventRefused as refused:  # it ended before (logout, revocation, end of life): say so
                    ended = _refused(refused)
            else:
                grace = lookup.status is Status.GRACE
                try:
                    applied = tx.fire(
                        SESSION.name,
                        lookup.session_id,
                        E.REFRESH,
                        actor=Actor.CLIENT,
                        facts={"refresh_token_current": True},
                        detail={"refresh_token": "reused_within_grace"} if grace else None,
                        request_id=request_id,
                    )
                except EventRefused as refused:
                    raise _refused(refused) from None
                user_id = sessions.owner(tx, lookup.session_id)
                assert user_id is not None
                return self._issue(tx, lookup.session_id, user_id, applied.to_state, same_generation=grace)
        if ended is not None:
            raise ended
        raise InvalidCredentials(
            "this refresh token was already used; the session is revoked as a precaution; log in again",
            code="refresh_token_reused",
        )

    def session_of_refresh(self, refresh_token: str) -> uuid.UUID:
        """The session a refresh token (current, or within the reuse window) stands for; nothing is spent."""
        valid = (credentials.RefreshStatus.CURRENT, credentials.RefreshStatus.GRACE)
        if refresh_token.startswith(credentials.REFRESH_PREFIX) and len(refresh_token) <= 128:
            with self.service.transaction() as tx:
                lookup = credentials.peek_refresh(tx, refresh_token, reuse_window=self.settings.refresh_reuse_window)
            if lookup.status in valid and lookup.session_id is not None:
                return lookup.session_id
        raise InvalidCredentials("the refresh cookie is not a current refresh token", code="refresh_token_invalid")

    def ticket(
        self, session_id: uuid.UUID, *, credential_expires_at: datetime, token_generation: int
    ) -> tuple[str, int]:
        """A WebSocket ticket standing for the caller's access token, of ``token_generation``, which expires at
        ``credential_expires_at``: a refresh (a newer generation) supersedes the ticket with the token."""
        ttl = self.settings.ws_ticket_ttl
        with self.service.transaction() as tx:
            ticket = credentials.issue_ticket(
                tx, session_id, ttl, credential_expires_at=credential_expires_at, token_generation=token_generation
            )
            return ticket, int(ttl.total_seconds())

    # -- internals ---------------------------------------------------------------------

    def _issue(
        self, tx: Tx, session_id: uuid.UUID, user_id: uuid.UUID, state: str, *, same_generation: bool = False
    ) -> Issued:
        """Fresh credentials: the next generation (every older token stops working), or, for a grace answer,
        one more pair of the current generation (the tokens just issued to the race's winner keep working)."""
        if same_generation:
            generation = credentials.generation_of(tx, session_id)
        else:
            generation = credentials.next_generation(tx, session_id)
        refresh, refresh_expires = credentials.issue_refresh(
            tx, session_id, generation, self.settings.refresh_token_ttl
        )
        access = self.access.issue(user_id=user_id, session_id=session_id, generation=generation)
        return Issued(
            session_id=session_id,
            state=str(state),
            access_token=access,
            refresh_token=refresh,
            expires_in=int(self.access.ttl.total_seconds()),
            refresh_expires_in=int((refresh_expires - tx.now).total_seconds()),
            within_grace=same_generation,
        )

    def _count_attempt(self, username: str | None, client_address: str) -> None:
        """Count an ID-token login attempt against the client address, failed or not (see login_id_token)."""
        window = self.settings.login_limit_window
        with self.service.transaction() as tx:
            count, started = ratelimits.count_attempt(tx, _address_key(client_address), window)
        if count > self.settings.login_limit_per_address:
            self._refuse(started, window)

    def _password_limits(self, username: str, client_address: str) -> list[tuple[str, int, timedelta]]:
        """(key, limit, window) of each count a failed password login adds to; the first is cleared on success."""
        s = self.settings
        user = username.casefold()[:150]
        return [
            (f"login:user-addr:{user}|{client_address}", s.login_limit_per_user, s.login_limit_window),
            (f"login:user:{user}", s.login_limit_per_account, s.login_account_window),
            (_address_key(client_address), s.login_limit_per_address, s.login_limit_window),
        ]

    def _check_limits(self, limits: list[tuple[str, int, timedelta]]) -> None:
        with self.service.transaction() as tx:
            counts = [(ratelimits.attempts(tx, key, window), limit, window) for key, limit, window in limits]
        for (count, started), limit, window in counts:
            if count >= limit:
                self._refuse(started, window)

    def _refuse(self, started: datetime, window: timedelta) -> NoReturn:
        retry_after = max(1, int((started + window - self.service.clock.now()).total_seconds()) + 1)
        raise RateLimited(f"too many login attempts; retry in {retry_after} s", retry_after=retry_after)


def _address_key(client_address: str) -> str:
    return f"login:addr:{client_address}"


def _refused(refused: EventRefused) -> AuthError:
    """What the holder hears when the session's state refused a refresh: the state's own refusal."""
    return refusal(refused.state) or InvalidCredentials("the session cannot be refreshed now", code="token_invalid")
