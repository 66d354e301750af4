"""The two distributions install one import package, ``sessionflow``, and the client one carries no server.

Both wheels are built from this checkout, as ``pip install`` builds them, and
installed into fresh virtual environments: the server's beside the client's,
and the client's alone.
"""

from __future__ import annotations

import email
import os
import socket
import subprocess
import sys
import time
import venv
import zipfile
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
CLIENT_DIR = ROOT / "clients" / "python"
SERVER_ONLY = ("litestar", "sqlalchemy", "alembic", "psycopg", "granian", "argon2", "prometheus_client")

pytestmark = pytest.mark.slow


def _run(*argv: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("wheels")
    built = _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", out, CLIENT_DIR, ROOT)
    assert built.returncode == 0, built.stderr
    found = {path.name.split("-")[0]: path for path in out.glob("*.whl")}
    assert set(found) == {"sessionflow", "sessionflow_client"}, found
    return found


def _files(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return [name for name in archive.namelist() if ".dist-info/" not in name]


def _metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        return email.message_from_string(archive.read(name).decode())


def _packages(wheel: Path) -> set[str]:
    return {"/".join(name.split("/")[:2]) for name in _files(wheel)}


def test_every_file_of_both_wheels_is_inside_the_sessionflow_package(wheels: dict[str, Path]) -> None:
    """No generic top-level names (api, lifecycle, persistence, migrations) reach site-packages."""
    for wheel in wheels.values():
        outside = [name for name in _files(wheel) if not name.startswith("sessionflow/")]
        assert outside == [], wheel.name


def test_sessionflow_is_a_namespace_package_the_two_distributions_share(wheels: dict[str, Path]) -> None:
    """Neither wheel owns ``sessionflow/__init__.py``, so installing both never overwrites a file of the other."""
    client, server = set(_files(wheels["sessionflow_client"])), set(_files(wheels["sessionflow"]))
    assert "sessionflow/__init__.py" not in client | server
    assert client & server == set()
    assert _packages(wheels["sessionflow_client"]) == {
        "sessionflow/lifecycle",
        "sessionflow/client",
        "sessionflow/middleware",
    }
    assert _packages(wheels["sessionflow"]) == {"sessionflow/api", "sessionflow/persistence", "sessionflow/migrations"}


def test_the_server_wheel_ships_the_migrations_type_markers_and_inspector_page(wheels: dict[str, Path]) -> None:
    server, client = set(_files(wheels["sessionflow"])), set(_files(wheels["sessionflow_client"]))
    assert {"sessionflow/migrations/env.py", "sessionflow/migrations/script.py.mako"} <= server
    assert any(name.startswith("sessionflow/migrations/versions/0001_") for name in server)
    assert {"sessionflow/api/py.typed", "sessionflow/persistence/py.typed"} <= server
    assert {
        "sessionflow/api/inspector/static/index.html",
        "sessionflow/api/inspector/static/inspector.css",
        "sessionflow/api/inspector/static/js/main.js",
        "sessionflow/api/inspector/static/js/generated/machines.js",
    } <= server, "the inspector page is served from the installed package"
    assert {"sessionflow/lifecycle/py.typed", "sessionflow/client/py.typed"} <= client


def test_the_server_depends_on_the_client_distribution_of_its_own_version(wheels: dict[str, Path]) -> None:
    server, client = _metadata(wheels["sessionflow"]), _metadata(wheels["sessionflow_client"])
    assert server["Version"] == client["Version"]
    assert f"sessionflow-client=={client['Version']}" in server.get_all("Requires-Dist", [])


def test_the_client_distribution_requires_nothing_the_server_needs(wheels: dict[str, Path]) -> None:
    requires = " ".join(_metadata(wheels["sessionflow_client"]).get_all("Requires-Dist", [])).lower()
    assert not [name for name in SERVER_ONLY if name in requires.replace("-", "_")], requires


@pytest.fixture(scope="module")
def client_only(wheels: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtual environment with only the client wheel (and its dependencies) installed."""
    home = tmp_path_factory.mktemp("client-venv")
    venv.create(home, with_pip=True)
    python = home / "bin" / "python"
    installed = _run(python, "-m", "pip", "install", "-q", wheels["sessionflow_client"])
    assert installed.returncode == 0, installed.stderr
    return python


@pytest.fixture(scope="module")
def server(wheels: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtual environment with the server installed as README says: both wheels, one command."""
    home = tmp_path_factory.mktemp("server-venv")
    venv.create(home, with_pip=True)
    installed = _run(home / "bin" / "python", "-m", "pip", "install", "-q", *wheels.values(), timeout=600)
    assert installed.returncode == 0, installed.stderr
    return home / "bin"


def _imports(python: Path, module: str, tmp_path: Path) -> bool:
    # Run from an empty directory: ``python -c`` puts the working directory on sys.path.
    found = subprocess.run([python, "-c", f"import {module}"], cwd=tmp_path, capture_output=True, check=False)
    return found.returncode == 0


def test_the_client_alone_imports_without_the_server_or_its_dependencies(client_only: Path, tmp_path: Path) -> None:
    assert _imports(client_only, "sessionflow.client", tmp_path)
    assert _imports(client_only, "sessionflow.lifecycle", tmp_path)
    assert _imports(client_only, "sessionflow.middleware", tmp_path)  # the services middleware, docs/services.md
    for module in ("sessionflow.api", "sessionflow.persistence", *SERVER_ONLY, "api", "lifecycle"):
        assert not _imports(client_only, module, tmp_path), module


def test_the_installed_server_runs_and_adds_no_generic_import_names(server: Path, tmp_path: Path) -> None:
    python = server / "python"
    assert _imports(python, "sessionflow.api.app", tmp_path)
    for module in ("api", "lifecycle", "persistence", "migrations"):
        assert not _imports(python, module, tmp_path), module
    version = subprocess.run([server / "sessionflow", "--version"], capture_output=True, text=True, check=False)
    assert version.returncode == 0, version.stderr
    assert version.stdout.split() == ["sessionflow", _metadata_version(python, tmp_path)]


def _metadata_version(python: Path, cwd: Path) -> str:
    code = "import importlib.metadata as m; print(m.version('sessionflow'))"
    return subprocess.run([python, "-c", code], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


def test_a_running_server_keeps_serving_while_its_package_is_replaced(
    server: Path, wheels: dict[str, Path], tmp_path: Path
) -> None:
    """The README's two commands in order: the second reinstalls the package the first one's server runs from.

    Removing the installed files under a running server (what ``pip install -e`` over a regular install
    does) leaves it ready and answering: readiness compares the database with the migration head read once
    at start, never with the scripts on disk.
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {key: value for key, value in os.environ.items() if not key.startswith("SESSIONFLOW_")}
    env["SESSIONFLOW_JWT_SECRET"] = "s" * 40
    base = f"http://127.0.0.1:{port}"
    with subprocess.Popen(
        [server / "sessionflow", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    ) as running:
        try:
            _wait_live(base)  # not /api/ready: its first answer must come after the files are gone
            removed = _run(server / "python", "-m", "pip", "uninstall", "-y", "-q", "sessionflow")
            assert removed.returncode == 0, removed.stderr
            assert list(server.parent.glob("lib/python3*/site-packages/sessionflow/migrations/env.py")) == []
            ready = httpx.get(f"{base}/api/ready", timeout=5)
            assert ready.status_code == 200, ready.text
            created = httpx.post(f"{base}/api/session/create", timeout=5)
            assert created.status_code == 201, created.text
        finally:
            running.terminate()
            running.wait(timeout=30)
            _run(server / "python", "-m", "pip", "install", "-q", "--no-deps", wheels["sessionflow"])


def _wait_live(base: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/api/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail("the installed server did not start")
