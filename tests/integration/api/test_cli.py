"""The sessionflow command line, run as a real process against real databases."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sessionflow.lifecycle import Actor, ManualClock
from sessionflow.persistence import SESSIONS, Database, TransitionService, users

ROOT = Path(__file__).resolve().parents[3]
PASSWORD = "correct horse battery staple"


def run(
    *args: str, url: str, stdin: str = "", cwd: Path = ROOT, path: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONFLOW_")}
    env["SESSIONFLOW_DATABASE_URL"] = url
    if path is not None:
        env["PATH"] = path
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
    """An empty database file: commands say to migrate instead of failing with a stack trace."""
    Path(sqlite_url.removeprefix("sqlite:///")).touch()
    result = run("sessions", "list", url=sqlite_url)
    assert result.returncode == 1
    assert "run `sessionflow migrate`" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_database_file_is_reported_not_created(tmp_path: Path) -> None:
    """Run from the wrong directory, a command names the file it looked for and leaves no empty database behind."""
    result = run("sessions", "list", url="sqlite:///sessionflow.db", cwd=tmp_path)
    assert result.returncode == 1
    assert f"no database at {tmp_path / 'sessionflow.db'}" in result.stderr
    assert "SESSIONFLOW_DATABASE_URL" in result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_every_database_command_says_which_database_it_used(sqlite_url: str, tmp_path: Path) -> None:
    migrated = run("migrate", url=sqlite_url)
    assert migrated.returncode == 0, migrated.stderr
    assert f"sessionflow: database sqlite:///{tmp_path / 'cli.db'}" in migrated.stderr
    listed = run("users", "list", url=sqlite_url)
    assert f"sessionflow: database sqlite:///{tmp_path / 'cli.db'}" in listed.stderr
    on_postgres = run("users", "list", url="postgresql://someone:hunter2@127.0.0.1:1/nowhere")
    assert "postgresql://someone:***@127.0.0.1:1/nowhere" in on_postgres.stderr
    assert "hunter2" not in on_postgres.stderr + on_postgres.stdout


@pytest.mark.parametrize(
    ("args", "url", "stdin", "status", "message"),
    [
        (("migrate", "bogus"), None, "", 1, "cannot migrate to 'bogus'"),
        (("users", "list"), "mysql://root@127.0.0.1/test", "", 2, "runs on sqlite or postgresql"),
        (("users", "create", "dave"), None, "a piped password\n", 1, "pass --password-stdin"),
        (("users", "disable", "nobody"), None, "", 1, "no user named 'nobody'"),
    ],
    ids=["unknown-revision", "unsupported-database", "piped-password-without-flag", "unknown-user"],
)
def test_expected_failures_are_one_line_without_a_traceback(
    sqlite_url: str, args: tuple[str, ...], url: str | None, stdin: str, status: int, message: str
) -> None:
    run("migrate", url=sqlite_url)
    result = run(*args, url=url or sqlite_url, stdin=stdin)
    assert result.returncode == status, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if not line.startswith("sessionflow: database ")]
    assert len(errors) == 1, result.stderr


def test_diagrams_without_graphviz_is_one_clear_line(tmp_path: Path, sqlite_url: str) -> None:
    root = _copy_of_the_generated_files(tmp_path)
    result = run("diagrams", "--root", str(root), url=sqlite_url, path=str(tmp_path / "no-programs-here"))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "sessionflow: Graphviz's `dot` is not on PATH, so SVG cannot be drawn; "
        "install Graphviz (apt-get install graphviz)"
    ]


def test_version_is_the_installed_distributions(sqlite_url: str) -> None:
    result = run("--version", url=sqlite_url)
    assert result.returncode == 0
    assert result.stdout.strip() == f"sessionflow {importlib.metadata.version('sessionflow')}"


def test_users_are_listed_disabled_and_enabled(sqlite_url: str) -> None:
    """Disabling a user revokes their open sessions; the listing shows role, status and open sessions."""
    run("migrate", url=sqlite_url)
    run("users", "create", "erin", "--admin", "--password-stdin", url=sqlite_url, stdin=PASSWORD + "\n")
    run("users", "create", "frank", "--password-stdin", url=sqlite_url, stdin=PASSWORD + "\n")
    db = Database.from_url(sqlite_url)
    try:
        frank = users.by_name(db, "frank")
        assert frank is not None
        service = TransitionService(db)
        with service.transaction() as tx:
            session = tx.create(SESSIONS, uuid.uuid4(), {"user_id": frank.id})
            tx.fire("session", session.id, "authenticate", actor=Actor.SERVER, facts={"credentials_verified": True})
    finally:
        db.dispose()

    listed = run("users", "list", url=sqlite_url)
    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    assert header.split() == ["USER", "ROLE", "STATUS", "LOGIN", "CREATED", "OPEN", "SESSIONS", "ID"]
    assert [row.split()[:6] for row in rows] == [
        ["erin", "admin", "enabled", "password", *rows[0].split()[4:6]],
        ["frank", "user", "enabled", "password", *rows[1].split()[4:6]],
    ]
    assert rows[1].split()[6] == "1"

    disabled = run("users", "disable", "frank", url=sqlite_url)
    assert disabled.returncode == 0, disabled.stderr
    assert disabled.stdout.strip() == "disabled user frank; revoked 1 open sessions"
    as_json = [json.loads(line) for line in run("users", "list", "--json", url=sqlite_url).stdout.splitlines()]
    assert [(u["username"], u["enabled"], u["open_sessions"]) for u in as_json] == [
        ("erin", True, 0),
        ("frank", False, 0),
    ]
    shown = json.loads(run("sessions", "show", str(session.id), "--json", url=sqlite_url).stdout)
    assert shown["state"] == "revoked"

    assert run("users", "enable", "frank", url=sqlite_url).stdout.strip() == "enabled user frank"
    assert json.loads(run("users", "list", "--json", url=sqlite_url).stdout.splitlines()[1])["enabled"] is True


def test_serve_warns_that_several_workers_on_sqlite_take_turns(sqlite_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONFLOW_")}
    env |= {"SESSIONFLOW_DATABASE_URL": sqlite_url, "SESSIONFLOW_JWT_SECRET": "s" * 40}
    port = _free_port()
    with subprocess.Popen(
        [sys.executable, "-m", "sessionflow.api.cli", "serve", "--workers", "2", "--port", str(port)],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
    ) as server:
        try:
            assert server.stderr is not None
            lines = [server.stderr.readline() for _ in range(2)]
        finally:
            server.terminate()
            server.wait(timeout=30)
    warning = next(line for line in lines if "warning" in line)
    assert "2 workers on SQLite" in warning
    assert "use PostgreSQL" in warning


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _copy_of_the_generated_files(tmp_path: Path) -> Path:
    root = tmp_path / "checkout"
    shutil.copytree(ROOT / "diagrams", root / "diagrams")
    shutil.copytree(ROOT / "docs", root / "docs")
    shutil.copy(ROOT / "README.md", root / "README.md")
    return root


def test_sessions_list_show_and_history(db_url: str) -> None:
    """Sessions are listed newest first with a header, shown with plain values, and their history printed."""
    clock = ManualClock()
    service = TransitionService(Database.from_url(db_url), clock=clock)
    try:
        session = service.create("session")
        service.fire("session", session.id, "authenticate", actor=Actor.SERVER, facts={"credentials_verified": True})
        clock.advance(timedelta(seconds=5))
        anonymous = service.create("session")
    finally:
        service.db.dispose()

    listed = run("sessions", "list", "--json", url=db_url)
    assert listed.returncode == 0, listed.stderr
    rows = [(row["session_id"], row["state"]) for row in map(json.loads, listed.stdout.splitlines())]
    assert rows == [(str(anonymous.id), "anonymous"), (str(session.id), "authenticated")]
    filtered = run("sessions", "list", "--state", "anonymous", "--json", url=db_url)
    assert [json.loads(line)["session_id"] for line in filtered.stdout.splitlines()] == [str(anonymous.id)]
    text = run("sessions", "list", url=db_url).stdout.splitlines()
    assert text[0].split() == ["SESSION", "STATE", "VERSION", "USER", "CREATED", "UPDATED"]
    assert text[1].split()[:4] == [str(anonymous.id), "anonymous", "0", "-"]
    assert text[1].split()[4:] == ["2030-01-01", "00:00:05Z", "2030-01-01", "00:00:05Z"]

    shown = run("sessions", "show", str(session.id), "--json", url=db_url)
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert (data["state"], data["version"]) == ("authenticated", 1)
    assert data["allowed_events"] == {"client": ["logout"], "admin": ["revoke"]}
    plain = run("sessions", "show", str(session.id), url=db_url).stdout
    assert "<" not in plain, "no Python reprs"
    fields = {
        label.strip(): value for label, value in (re.split(r"\s{2,}", line, maxsplit=1) for line in plain.splitlines())
    }
    assert fields["state"] == "authenticated"
    assert fields["client may fire"] == "logout"
    assert fields["admin may fire"] == "revoke"
    assert fields["timer lifetime"] == "2030-01-31 00:00:00Z"
    assert fields["timer idle"] == "not armed"
    assert fields["user"] == "- (anonymous)"

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
    """The committed diagrams and generated blocks match the definitions; an edited copy is reported as drift."""
    assert run("diagrams", "--check", url=sqlite_url).returncode == 0
    root = _copy_of_the_generated_files(tmp_path)
    (root / "diagrams" / "session.mmd").write_text("stateDiagram-v2\n")
    protocol = (root / "docs" / "protocol.md").read_text()
    assert "| 4410 |" in protocol
    (root / "docs" / "protocol.md").write_text(protocol.replace("| 4410 |", "| 4411 |"))
    drift = run("diagrams", "--check", "--root", str(root), url=sqlite_url)
    assert drift.returncode == 1
    assert "session.mmd" in drift.stderr
    assert "protocol.md" in drift.stderr
    fixed = run("diagrams", "--root", str(root), url=sqlite_url)
    assert fixed.returncode == 0, fixed.stderr
    assert (root / "docs" / "protocol.md").read_text() == protocol
    assert run("diagrams", "--check", "--root", str(root), url=sqlite_url).returncode == 0


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
        ("users", "list"),
        ("users", "disable"),
        ("users", "enable"),
        ("sweep",),
        ("demo",),
        ("serve",),
    ],
)
def test_every_command_has_help(command: tuple[str, ...], sqlite_url: str) -> None:
    result = run(*command, "--help", url=sqlite_url)
    assert result.returncode == 0
    assert "usage: sessionflow" in result.stdout
