"""The peer for ``bench/peer.py``: fastapi-users with its database token strategy, set up as its docs show.

A FastAPI app with SQLAlchemy users and access tokens (``fastapi-users-db-sqlalchemy``), a
``BearerTransport`` and a ``DatabaseStrategy``: every authenticated request reads its token's row, then
the user's row; logout deletes the token's row; login verifies the password with the library's
default hasher (pwdlib, argon2). It is what a Python team would reach for to get stored, revocable
sessions, so it does what sessionflow's read and logout do at their core: check a stored credential
on every request, and end it on logout.

Only the benchmark imports this module (``pip install -e '.[bench]'``); nothing in the server does.
"""

# No ``from __future__ import annotations``: FastAPI reads these dependencies' annotations at run time, and they
# name functions local to create_peer_app.

import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI
from fastapi_users import BaseUserManager, FastAPIUsers, UUIDIDMixin, schemas
from fastapi_users.authentication import AuthenticationBackend, BearerTransport
from fastapi_users.authentication.strategy.db import AccessTokenDatabase, DatabaseStrategy
from fastapi_users_db_sqlalchemy import SQLAlchemyBaseUserTableUUID, SQLAlchemyUserDatabase
from fastapi_users_db_sqlalchemy.access_token import SQLAlchemyAccessTokenDatabase, SQLAlchemyBaseAccessTokenTableUUID
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

TOKEN_LIFETIME = 3600  # seconds, as sessionflow's refresh window; both far longer than a run
SECRET = "bench-only, never used for anything but password-reset tokens the benchmark never asks for"


class Base(DeclarativeBase):
    pass


class User(SQLAlchemyBaseUserTableUUID, Base):
    pass


class AccessToken(SQLAlchemyBaseAccessTokenTableUUID, Base):
    pass


class UserRead(schemas.BaseUser[uuid.UUID]):
    pass


class UserManager(UUIDIDMixin, BaseUserManager[User, uuid.UUID]):
    reset_password_token_secret = SECRET
    verification_token_secret = SECRET


def async_url(url: str) -> str:
    """The benchmark's database URL with the async driver fastapi-users' docs use for it."""
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url.removeprefix("sqlite:///")
    scheme, _, rest = url.partition("://")
    if scheme.startswith("postgresql"):
        return "postgresql+asyncpg://" + rest
    raise ValueError(f"no async driver for {scheme}")


def from_env() -> FastAPI:
    """The factory the server's worker calls: the peer on ``PEER_DATABASE_URL``."""
    return create_peer_app(os.environ["PEER_DATABASE_URL"])


def create_peer_app(url: str) -> FastAPI:
    """Routes: ``POST /auth/db/login`` (form), ``POST /auth/db/logout``, ``GET /users/me``."""
    engine = create_async_engine(async_url(url))
    sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def get_session() -> AsyncIterator[AsyncSession]:
        async with sessions() as session:
            yield session

    async def get_user_db(session: Annotated[AsyncSession, Depends(get_session)]) -> AsyncIterator[Any]:
        yield SQLAlchemyUserDatabase(session, User)

    async def get_access_token_db(session: Annotated[AsyncSession, Depends(get_session)]) -> AsyncIterator[Any]:
        yield SQLAlchemyAccessTokenDatabase(session, AccessToken)

    async def get_user_manager(user_db: Annotated[Any, Depends(get_user_db)]) -> AsyncIterator[UserManager]:
        yield UserManager(user_db)

    def get_database_strategy(
        access_token_db: Annotated[AccessTokenDatabase[AccessToken], Depends(get_access_token_db)],
    ) -> DatabaseStrategy[User, uuid.UUID, AccessToken]:
        return DatabaseStrategy(access_token_db, lifetime_seconds=TOKEN_LIFETIME)

    backend = AuthenticationBackend(
        name="db", transport=BearerTransport(tokenUrl="auth/db/login"), get_strategy=get_database_strategy
    )
    users = FastAPIUsers[User, uuid.UUID](get_user_manager, [backend])

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await engine.dispose()

    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None, lifespan=lifespan)
    app.include_router(users.get_auth_router(backend), prefix="/auth/db")
    app.include_router(users.get_users_router(UserRead, schemas.BaseUserUpdate), prefix="/users")

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
