"""The metadata a published library carries, read back from the installed distribution."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_license_file_and_expression() -> None:
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    meta = metadata.metadata("convstore")
    assert meta["License-Expression"] == "MIT"
    assert "LICENSE" in (meta.get_all("License-File") or [])


def test_classifiers_urls_keywords() -> None:
    meta = metadata.metadata("convstore")
    classifiers = meta.get_all("Classifier") or []
    assert "Typing :: Typed" in classifiers
    assert "Programming Language :: Python :: 3.11" in classifiers
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL") or [])
    assert {"Homepage", "Documentation", "Source", "Issues"} <= set(urls)
    assert all(u.startswith("https://github.com/convstore/convstore") for u in urls.values())
    assert "redis" in (meta["Keywords"] or "").split(",")
    assert meta["Requires-Python"] == ">=3.11"
