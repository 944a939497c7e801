"""What compiling the client's append path would buy: the floor study on a mypyc build.

``python -m benchmarks.compiled [--pairs 4] [--rounds 16] [--ops 400]`` (needs the ``test``
extra's mypy, and a C compiler)

The floor study (``benchmarks.floor``) puts the wall goal's shortfall on the client's
Python: validating and encoding a message, its id, the plan and the driver. This compiles a
copy of those modules (``HOT_PATH``) to C with mypyc, the compiler of the same typed source
that mypy and black ship with, into a temporary directory, checks that the copy really
imports compiled, then runs the floor study alternately on the compiled copy and on the
source (``--pairs`` times, each in a fresh process, the order swapped every pair) and
reports each pair's figures side by side. Nothing in ``src/`` changes: convstore does not
ship compiled (``benchmarks/README.md``, "Compiled with mypyc", says why).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

#: The modules an append runs through, from the repository method down to the codec.
HOT_PATH = (
    "convstore/repositories.py",
    "convstore/drivers.py",
    "convstore/operation.py",
    "convstore/plans/steps.py",
    "convstore/plans/append.py",
    "convstore/plans/values.py",
    "convstore/plans/layout.py",
    "convstore/codec.py",
    "convstore/packing.py",
    "convstore/validation.py",
    "convstore/isotime.py",
    "convstore/message_ids.py",
)

#: What each pair reports of a floor study.
FIGURES = {
    "wall_vs_xadd_only": ("throughput_vs_xadd_only", "convstore append"),
    "prebuilt_vs_xadd_only": ("throughput_vs_xadd_only", "convstore script, arguments prebuilt"),
    "client_cpu_vs_raw_xadd": ("client_cpu_vs_raw_xadd", "convstore append"),
    "preparation_in_the_loop_us": ("client_preparation_us", "in_the_loop"),
    "preparation_tight_us": ("client_preparation_us", "tight_loop_without_io"),
}


def compile_copy(dest: Path, modules: tuple[str, ...]) -> Path:
    """A copy of ``src/convstore`` in ``dest`` with ``modules`` compiled in place; the
    directory to put first on ``PYTHONPATH``.

    mypyc runs without the project's ``pyproject.toml`` (whose metadata an older
    setuptools in the venv may not read), so msgpack's missing stubs are let through on
    the command line; the annotations it compiles are the ones CI's ``mypy --strict``
    checks.
    """
    shutil.copytree(ROOT / "src" / "convstore", dest / "convstore")
    done = subprocess.run(
        [sys.executable, "-m", "mypyc", "--ignore-missing-imports", *modules],
        cwd=dest,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"benchmarks.compiled: mypyc failed:\n{done.stdout[-3000:]}{done.stderr}")
    return dest


def compiled_modules(path: Path, modules: tuple[str, ...]) -> list[str]:
    """The ``modules`` that a fresh interpreter with ``path`` first imports as extensions."""
    names = [m.removesuffix(".py").replace("/", ".") for m in modules]
    probe = (
        "import importlib, json, sys\n"
        "names = json.loads(sys.argv[1])\n"
        "print(json.dumps([n for n in names\n"
        "    if not importlib.import_module(n).__file__.endswith('.py')]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, json.dumps(names)],
        env=_env(path),
        capture_output=True,
        text=True,
        check=True,
    )
    found: list[str] = json.loads(out.stdout)
    return found


def _env(first: Path | None) -> dict[str, str]:
    paths = [str(first)] if first else []
    return {**os.environ, "PYTHONPATH": os.pathsep.join([*paths, str(ROOT)])}


def floor_study(path: Path | None, argv: list[str]) -> dict[str, Any]:
    """One ``benchmarks.floor`` run in a fresh process, on ``path``'s convstore if given."""
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.floor", *argv],
        env=_env(path),
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise SystemExit(f"benchmarks.compiled: the floor study failed:\n{out.stderr[-3000:]}")
    report: dict[str, Any] = json.loads(out.stdout)
    return report


def figures(report: dict[str, Any]) -> dict[str, float]:
    return {name: report[section][row] for name, (section, row) in FIGURES.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.compiled")
    p.add_argument("--pairs", type=int, default=4)
    p.add_argument("--rounds", type=int, default=16)
    p.add_argument("--ops", type=int, default=400)
    p.add_argument("--no-pin", action="store_true")
    p.add_argument("--modules", nargs="+", default=list(HOT_PATH), help="paths under src/")
    a = p.parse_args(argv)
    modules = tuple(a.modules)
    study = ["--rounds", str(a.rounds), "--ops", str(a.ops)] + (["--no-pin"] if a.no_pin else [])
    with tempfile.TemporaryDirectory(prefix="convstore-mypyc-") as tmp:
        path = compile_copy(Path(tmp), modules)
        compiled = compiled_modules(path, modules)
        if len(compiled) != len(modules):
            raise SystemExit(f"benchmarks.compiled: only {compiled} import compiled")
        pairs = []
        for n in range(a.pairs):
            order = (path, None) if n % 2 == 0 else (None, path)
            runs = {("compiled" if p else "source"): figures(floor_study(p, study)) for p in order}
            pairs.append({"source": runs["source"], "compiled": runs["compiled"]})
    medians = {
        build: {k: statistics.median(pair[build][k] for pair in pairs) for k in FIGURES}
        for build in ("source", "compiled")
    }
    report = {"compiled_modules": compiled, "floor_args": study, "pairs": pairs, "median": medians}
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
