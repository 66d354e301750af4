"""The sessionflow command line, run as a real process against real databases."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sessionflow.lifecycle import Actor, ManualClock
from sessionflow.persistence.database import Database
from sessionflow.persistence.service import TransitionService

ROOT = Path(__file__).resolve().parents[3]
PASSWORD = "correct horse battery staple"


def run(*args: str, url: str, stdin: str = "", cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONFLOW_")}
    env["SESSIONFLOW_DATABASE_URL"] = url
    return subprocess.run(
        [sys.executable, "-m", "sessionflow.api.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
        check=False,
    )


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


def test_migrate_then_create_a_user_from_stdin(sqlite_url: str) -> None:
    """A fresh database is migrated, then a user is created without the password ever being an argument."""
    assert run("migrate", url=sqlite_url).returncode == 0
    created = run("users", "create", "alice", "--admin", "--password-stdin", url=sqlite_url, stdin=PASSWORD + "\n")
    assert created.returncode == 0, created.stderr
    assert "created admin user alice" in created.stdout
    assert PASSWORD not in created.stdout + created.stderr
    again = run("users", "create", "alice", "--password-stdin", url=sqlite_url, stdin=PASSWORD + "\n")
    assert again.returncode == 1
    assert "already exists" in again.stderr
    assert "argon2" not in again.stderr  # no hash in the error


def test_password_is_never_accepted_as_an_argument(sqlite_url: str) -> None:
    """There is no --password option; argparse refuses it as a usage error."""
    result = run("users", "create", "bob", "--password", PASSWORD, url=sqlite_url)
    assert result.returncode == 2
    assert "unrecognized arguments" in result.stderr


def test_short_password_is_refused_clearly(sqlite_url: str) -> None:
    run("migrate", url=sqlite_url)
    result = run("users", "create", "carol", "--password-stdin", url=sqlite_url, stdin="short\n")
    assert result.returncode == 1
    assert "at least 8 characters" in result.stderr


def test_commands_refuse_an_unmigrated_database(sqlite_url: str) -> None:
    """Before `migrate`, commands say so instead of failing with a stack trace."""
    result = run("sessions", "list", url=sqlite_url)
    assert result.returncode == 1
    assert "run `sessionflow migrate`" in result.stderr
    assert "Traceback" not in result.stderr


def test_sessions_list_show_and_history(db_url: str) -> None:
    """Sessions made by the service are listed, shown with allowed events, and their history printed."""
    service = TransitionService(Database.from_url(db_url))
    try:
        session = service.create("session")
        service.fire("session", session.id, "authenticate", actor=Actor.SERVER, facts={"credentials_verified": True})
        anonymous = service.create("session")
    finally:
        service.db.dispose()

    listed = run("sessions", "list", "--json", url=db_url)
    assert listed.returncode == 0, listed.stderr
    rows = {row["session_id"]: row["state"] for row in map(json.loads, listed.stdout.splitlines())}
    assert rows == {str(session.id): "authenticated", str(anonymous.id): "anonymous"}
    filtered = run("sessions", "list", "--state", "anonymous", "--json", url=db_url)
    assert [json.loads(line)["session_id"] for line in filtered.stdout.splitlines()] == [str(anonymous.id)]

    shown = run("sessions", "show", str(session.id), "--json", url=db_url)
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert (data["state"], data["version"]) == ("authenticated", 1)
    assert data["allowed_events"] == ["activate", "logout", "revoke", "end"]

    history = run("sessions", "history", str(session.id), "--json", url=db_url)
    assert [json.loads(line)["event"] for line in history.stdout.splitlines()] == ["authenticate"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("sessions", "show", "not-a-uuid"), "not a UUID"),
        (("sessions", "show", "00000000-0000-0000-0000-000000000000"), "no session"),
        (("sessions", "list", "--state", "sleeping"), "not one of"),
        (("sessions", "list", "--limit", "0"), "limit"),
        (("sessions", "list", "--user", "nobody"), "no user named"),
    ],
)
def test_bad_arguments_fail_with_one_clear_line(db_url: str, args: tuple[str, ...], message: str) -> None:
    result = run(*args, url=db_url)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_sweep_fires_timers_that_came_due(db_url: str) -> None:
    """A session whose login window closed long ago is ended by `sessionflow sweep`."""
    past = TransitionService(Database.from_url(db_url), clock=ManualClock(datetime(2001, 1, 1, tzinfo=UTC)))
    try:
        stale = past.create("session")
    finally:
        past.db.dispose()
    result = run("sweep", url=db_url)
    assert result.returncode == 0, result.stderr
    assert f"session {stale.id}: anonymous --end--> closed" in result.stdout
    assert "fired 1 timer events" in result.stdout


def test_diagrams_check_passes_on_the_repository_and_fails_on_drift(tmp_path: Path, sqlite_url: str) -> None:
    """The committed diagrams match the definitions; an edited copy is reported as drift."""
    assert run("diagrams", "--check", url=sqlite_url).returncode == 0
    copy = tmp_path / "diagrams"
    copy.mkdir()
    for path in (ROOT / "diagrams").iterdir():
        (copy / path.name).write_text(path.read_text())
    (copy / "session.mmd").write_text("stateDiagram-v2\n")
    drift = run("diagrams", "--check", "--dir", str(copy), "--readme", str(tmp_path / "none.md"), url=sqlite_url)
    assert drift.returncode == 1
    assert "session.mmd" in drift.stderr


@pytest.mark.parametrize(
    "command",
    [
        (),
        ("migrate",),
        ("diagrams",),
        ("sessions", "list"),
        ("sessions", "show"),
        ("sessions", "history"),
        ("users", "create"),
        ("sweep",),
        ("demo",),
        ("serve",),
    ],
)
def test_every_command_has_help(command: tuple[str, ...], sqlite_url: str) -> None:
    result = run(*command, "--help", url=sqlite_url)
    assert result.returncode == 0
    assert "usage: sessionflow" in result.stdout
