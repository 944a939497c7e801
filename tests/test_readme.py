"""README.md is part of the product: its commands and every Python example must work."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REDIS_URL

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)
BASH_BLOCKS = re.findall(r"```bash\n(.*?)```", README, flags=re.S)


def test_readme_opens_with_the_two_commands() -> None:
    first, second = BASH_BLOCKS[0].strip(), BASH_BLOCKS[1].strip()
    assert README.index(BASH_BLOCKS[0]) < README.index("## What it is")
    assert first.endswith("convstore demo") and "python3 -m venv .venv" in first
    assert second.endswith("python -m pytest") and "python3 -m venv .venv" in second


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "README.md" in ci and "sed -n" in ci


def _run_example(index: int, env: dict[str, str]) -> None:
    code = PYTHON_BLOCKS[index]
    result = subprocess.run(
        [sys.executable, "-W", "ignore::DeprecationWarning", "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env,
    )
    assert result.returncode == 0, f"README example {index} failed:\n{code}\n{result.stderr}"


@pytest.mark.parametrize("index", range(len(PYTHON_BLOCKS)))
def test_readme_python_example_runs_embedded(index: int) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "CONVSTORE_NAMESPACE")}
    _run_example(index, env)


@pytest.mark.real_redis
@pytest.mark.parametrize("index", range(len(PYTHON_BLOCKS)))
def test_readme_python_example_runs_twice_on_a_persistent_redis(
    index: int, shared: str
) -> None:
    """A reader runs an example, then runs it again: the data of the first run is still there."""
    env = {**os.environ, "REDIS_URL": REDIS_URL, "CONVSTORE_NAMESPACE": shared}
    _run_example(index, env)
    _run_example(index, env)


def test_readme_store_examples_follow_the_environment() -> None:
    """Every example that builds a store does so with from_env(), so the test above can aim it.

    The one exception is the persistent embedded server (``embedded(path=...)``), which is
    its own real server, on disk: that example is about it."""
    for code in PYTHON_BLOCKS:
        assert ".embedded(" not in code.replace(".embedded(path=", "")


def test_demo_command_runs_on_the_embedded_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    result = subprocess.run(
        [sys.executable, "-m", "convstore", "demo"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "embedded in-process Redis" in result.stdout
    assert "demo_session_data_analyst_to_report_writer" in result.stdout
    assert "Sales rose 15% over Q2." in result.stdout
