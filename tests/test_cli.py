"""The installed ``convstore`` command, run as a user runs it: a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest

import convstore
from convstore.cli import EXIT_FAILED, EXIT_USAGE
from convstore.urls import redact_url
from servers import ServerProcess, free_port, start_server

ROOT = Path(__file__).resolve().parent.parent
COMMAND = Path(sys.executable).parent / "convstore"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    assert COMMAND.exists(), f"the entry point is not installed at {COMMAND}"
    base = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    return subprocess.run(
        [str(COMMAND), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**base, **(env or {})},
    )


@pytest.fixture(scope="module")
def source_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """An empty private server: an import source that has nothing to import."""
    server = start_server(tmp_path_factory.mktemp("cli-source"))
    yield server
    server.stop()


def test_version_is_the_installed_metadata_and_pyproject() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert convstore.__version__ == metadata.version("convstore") == declared
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"convstore {declared}"


def test_unreachable_target_fails_with_one_line_and_says_what_it_used(
    source_server: ServerProcess,
) -> None:
    dead = f"redis://importer:s3cret@127.0.0.1:{free_port()}/0"
    result = run("import-aiecs", source_server.url, "--target-url", dead, "--namespace", "mig")
    assert result.returncode == EXIT_FAILED
    assert f"import-aiecs: source {source_server.url}" in result.stdout
    assert f"import-aiecs: target {redact_url(dead)} (from --target-url)" in result.stdout
    assert "import-aiecs: namespace mig" in result.stdout
    assert "s3cret" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("convstore: error: StoreUnavailable: target redis://importer:***@")
    assert "--traceback" in lines[0] and "Traceback" not in result.stderr


def test_target_from_redis_url_is_named(source_server: ServerProcess) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    result = run("import-aiecs", source_server.url, "--no-progress", env={"REDIS_URL": dead})
    assert result.returncode == EXIT_FAILED
    assert f"import-aiecs: target {dead} (from REDIS_URL)" in result.stdout


def test_unreachable_source_and_traceback_flag() -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    result = run("import-aiecs", dead, "--target-url", dead)
    assert result.returncode == EXIT_FAILED
    assert result.stderr.startswith(f"convstore: error: StoreUnavailable: source {dead}")
    traced = run("--traceback", "import-aiecs", dead, "--target-url", dead)
    assert traced.returncode == EXIT_FAILED
    assert "Traceback (most recent call last)" in traced.stderr
    assert traced.stderr.strip().splitlines()[-1].startswith("convstore: error: StoreUnavailable")


def test_bad_url_and_bad_usage_exit_2() -> None:
    result = run("import-aiecs", "redis://127.0.0.1:notaport/0")
    assert result.returncode == EXIT_USAGE
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("convstore: error: ValueError: Port could not be cast")
    assert run("no-such-command").returncode == EXIT_USAGE
    assert run("import-aiecs").returncode == EXIT_USAGE


def test_redact_url() -> None:
    assert redact_url("redis://u:pw@h:1/0") == "redis://u:***@h:1/0"
    assert redact_url("rediss://:pw@h/0") == "rediss://:***@h/0"
    assert redact_url("redis://h:1/0") == "redis://h:1/0"
    assert redact_url("unix:///tmp/r.sock") == "unix:///tmp/r.sock"


def test_demo_does_not_print_the_password() -> None:
    result = run("demo", env={"REDIS_URL": f"redis://u:s3cret@127.0.0.1:{free_port()}/0"})
    assert "REDIS_URL=redis://u:***@127.0.0.1" in result.stdout
    assert "s3cret" not in result.stdout + result.stderr
    assert result.returncode == EXIT_FAILED  # nothing listens there
    assert result.stderr.startswith("convstore: error: StoreUnavailable")
