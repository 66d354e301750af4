"""The reference Python client (async: httpx + websockets), running the client machine of ``lifecycle/client.py``.

async with Client("http://127.0.0.1:8000") as client:
    await client.login("alice", password)  # the server creates the session
    await client.connect()  # ticket, WebSocket, welcome
    async for transition in client.transitions():
        print(transition)  # the client's own moves and the session's, until it stops
"""

from __future__ import annotations

from sessionflow.client.backoff import Backoff, Delay
from sessionflow.client.errors import ClientError
from sessionflow.client.records import (
    ClientTransition,
    SessionTransition,
    Stopped,
    Transition,
    TransitionStream,
    Wire,
)
from sessionflow.client.refusals import EVENT_FOR_ACTION, close_action
from sessionflow.client.session import Client
from sessionflow.lifecycle.client import CLIENT, ClientEvent, ClientState

__all__ = [
    "CLIENT",
    "EVENT_FOR_ACTION",
    "Backoff",
    "Client",
    "ClientError",
    "ClientEvent",
    "ClientState",
    "ClientTransition",
    "Delay",
    "SessionTransition",
    "Stopped",
    "Transition",
    "TransitionStream",
    "Wire",
    "close_action",
]
