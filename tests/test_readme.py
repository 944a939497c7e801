"""README.md is part of the product: its commands and every Python example must work."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

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


@pytest.mark.parametrize("index", range(len(PYTHON_BLOCKS)))
def test_readme_python_example_runs(index: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    code = PYTHON_BLOCKS[index]
    result = subprocess.run(
        [sys.executable, "-W", "ignore::DeprecationWarning", "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, f"README example {index} failed:\n{code}\n{result.stderr}"


def test_demo_command_runs_on_the_embedded_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    result = subprocess.run(
        [sys.executable, "-m", "convstore", "demo"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "embedded in-process Redis" in result.stdout
    assert "demo_session_data_analyst_to_report_writer" in result.stdout
    assert "Sales rose 15% over Q2." in result.stdout
