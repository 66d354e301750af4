"""Settings come from SESSIONFLOW_* variables with defaults that work on a fresh machine."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from sessionflow.api.errors import SettingsError
from sessionflow.api.settings import Settings, parse_duration


def test_defaults_use_a_sqlite_file_in_the_working_directory() -> None:
    """With no variables set the database is sessionflow.db beside the process."""
    settings = Settings.from_env({})
    assert settings.database_url == "sqlite:///sessionflow.db"
    assert settings.session_idle_timeout == timedelta(minutes=30)
    assert settings.session_lifetime == timedelta(days=30)
    assert settings.session_reconnect_grace == timedelta(seconds=60)


def test_variables_override_defaults_with_their_types() -> None:
    """Integers, durations and comma-separated lists are parsed into their types."""
    settings = Settings.from_env(
        {
            "SESSIONFLOW_PORT": "9001",
            "SESSIONFLOW_SESSION_IDLE_TIMEOUT": "15m",
            "SESSIONFLOW_ALLOWED_ORIGINS": "https://app.example, https://admin.example,",
            "SESSIONFLOW_DATABASE_URL": "postgresql://db/sessions",
        }
    )
    assert settings.port == 9001
    assert settings.session_idle_timeout == timedelta(minutes=15)
    assert settings.allowed_origins == ("https://app.example", "https://admin.example")
    assert settings.database_url == "postgresql://db/sessions"


def test_durations_feed_the_machines_timers() -> None:
    """Configured durations reach the transition service keyed by machine and timer."""
    settings = Settings.from_env({"SESSIONFLOW_WS_HEARTBEAT_INTERVAL": "10s", "SESSIONFLOW_SESSION_LIFETIME": "2d"})
    durations = settings.durations()
    assert durations["session"]["lifetime"] == timedelta(days=2)
    assert durations["connection"]["heartbeat"] == timedelta(seconds=30)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("SESSIONFLOW_PORT", "eighty", "SESSIONFLOW_PORT"),
        ("SESSIONFLOW_PORT", "0", "SESSIONFLOW_PORT must be at least 1"),
        ("SESSIONFLOW_SESSION_IDLE_TIMEOUT", "soon", "SESSIONFLOW_SESSION_IDLE_TIMEOUT"),
        ("SESSIONFLOW_SESSION_IDLE_TIMEOUT", "0", "positive duration"),
        ("SESSIONFLOW_FANOUT", "kafka", "SESSIONFLOW_FANOUT must be one of auto, redis, postgres, local"),
        ("SESSIONFLOW_FANOUT", "redis", "SESSIONFLOW_FANOUT=redis needs SESSIONFLOW_REDIS_URL"),
        ("SESSIONFLOW_FANOUT", "postgres", "needs a PostgreSQL SESSIONFLOW_DATABASE_URL"),
        ("SESSIONFLOW_REDIS_URL", "127.0.0.1:6379", "SESSIONFLOW_REDIS_URL must start with redis://"),
        ("SESSIONFLOW_JWT_KEYS_DIR", "/srv/keys", "HS256 uses a secret, not key files"),
        ("SESSIONFLOW_JWT_PRIVATE_KEY_FILE", "/srv/key.pem", "SESSIONFLOW_JWT_PUBLIC_KEY_FILE go together"),
    ],
)
def test_unusable_values_name_the_variable(variable: str, value: str, message: str) -> None:
    """A bad value is refused with the variable's name in the message."""
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({variable: value})


def test_unknown_variables_are_reported_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    """A misspelt variable is logged by name and otherwise ignored; test-suite variables are not."""
    with caplog.at_level(logging.WARNING, logger="sessionflow.settings"):
        Settings.from_env({"SESSIONFLOW_IDLE_TIMOUT": "5m", "SESSIONFLOW_TEST_POSTGRES_URL": "x"})
    assert "SESSIONFLOW_IDLE_TIMOUT" in caplog.text
    assert "SESSIONFLOW_TEST_POSTGRES_URL" not in caplog.text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90", timedelta(seconds=90)),
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("1.5h", timedelta(minutes=90)),
        ("30d", timedelta(days=30)),
    ],
)
def test_duration_syntax(text: str, expected: timedelta) -> None:
    """Durations are seconds, or a number with unit s, m, h or d."""
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("environ", "transport"),
    [
        ({}, "local"),
        ({"SESSIONFLOW_DATABASE_URL": "postgresql://db.internal/sessions"}, "postgres"),
        ({"SESSIONFLOW_FANOUT": "redis", "SESSIONFLOW_REDIS_URL": "redis://:pw@cache:6379/0"}, "redis"),
        ({"SESSIONFLOW_DATABASE_URL": "postgresql://db.internal/sessions", "SESSIONFLOW_FANOUT": "local"}, "local"),
    ],
)
def test_the_fanout_follows_the_database_unless_chosen(environ: dict[str, str], transport: str) -> None:
    settings = Settings.from_env(environ)
    assert settings.fanout_transport() == transport
    assert "pw@" not in repr(settings), "a Redis password never reaches repr, so never a log line"
