"""The real aiecs 2.2.0 code, loaded from its published wheel without its package ``__init__``s.

Shared by the tests (tests/aiecs_reference.py wraps it with pytest's skip/fail) and the
benchmark's aiecs ContextEngine peer (benchmarks/goal_aiecs.py).

aiecs's package ``__init__`` files import its whole framework (FastAPI, Celery, LLM SDKs...),
so installing aiecs to run its ContextEngine is neither light nor reliable. This loader instead:

1. downloads the wheel once with ``pip download --no-deps aiecs==2.2.0`` into
   ``~/.cache/convstore-tests/`` (``CONVSTORE_TEST_CACHE`` overrides it) and unpacks it there;
2. inside ``with load(...)``, puts a finder in front of ``sys.meta_path`` that serves every
   ``aiecs.*`` *package* as an empty stub module whose ``__path__`` is the wheel's directory,
   and every ``aiecs.*`` *module* from the wheel's own file. So only the modules asked for, and
   the ones they import, ever run; on exit the finder and the loaded modules are removed
   again, so nothing else sees an ``aiecs`` package. ``aiecs.llm`` is the one stub with
   content: it re-exports ``LLMMessage`` and ``LLMResponse`` from the real
   ``aiecs.llm.clients.base_client`` (its ``__init__`` would import every LLM SDK).

Third-party imports are not stubbed: the modules loaded here need only ``redis`` (a convstore
dependency) and, for ``aiecs.llm.clients.schemas``, the agent models and ``MemoryPlugin``,
``pydantic`` and ``pyyaml`` (in the ``test`` extra). When the wheel or a module cannot be had,
:class:`ReferenceUnavailable` says why.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

AIECS_VERSION = "2.2.0"
WHEEL_NAME = f"aiecs-{AIECS_VERSION}-py3-none-any.whl"

# The modules the differential and end-to-end tests (and the benchmark) use (ConversationMemory lives in
# aiecs/domain/agent/memory/conversation.py).
CORE_MODULES = (
    "aiecs.core.interface.storage_interface",
    "aiecs.domain.task.task_context",
    "aiecs.infrastructure.persistence.redis_client",
    "aiecs.domain.context.conversation_models",
    "aiecs.domain.context.context_engine",
    "aiecs.domain.context.compression.policy",
    "aiecs.infrastructure.persistence.context_engine_client",
    "aiecs.infrastructure.persistence.permanent_backend_factory",
)
MEMORY_MODULES = ("aiecs.domain.agent.memory.conversation",)
PLUGIN_MODULES = (
    "aiecs.domain.agent.plugins.models",
    "aiecs.domain.agent.plugins.context",
    "aiecs.domain.agent.plugins.builtin.memory_plugin",
)


class ReferenceUnavailable(RuntimeError):
    """The wheel could not be downloaded or a module could not be loaded."""


def cache_dir() -> Path:
    default = Path.home() / ".cache" / "convstore-tests"
    return Path(os.environ.get("CONVSTORE_TEST_CACHE", default))


def wheel_path() -> Path:
    """The cached wheel, downloaded with pip on first use."""
    target = cache_dir()
    wheel = target / WHEEL_NAME
    if wheel.is_file():
        return wheel
    target.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    command += ["--disable-pip-version-check", "-q", "-d", str(target), f"aiecs=={AIECS_VERSION}"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ReferenceUnavailable(f"pip download aiecs=={AIECS_VERSION} failed: {exc}") from exc
    if done.returncode != 0 or not wheel.is_file():
        raise ReferenceUnavailable(
            f"pip download aiecs=={AIECS_VERSION} failed ({done.returncode}): {done.stderr[-800:]}"
        )
    return wheel


def unpacked_root() -> Path:
    """The directory holding the wheel's ``aiecs/`` tree (unpacked once, atomically)."""
    root = cache_dir() / f"aiecs-{AIECS_VERSION}"
    if (root / "aiecs" / "domain" / "context" / "context_engine.py").is_file():
        return root
    wheel = wheel_path()
    staging = Path(tempfile.mkdtemp(prefix="aiecs-unpack-", dir=cache_dir()))
    try:
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(staging)
        try:
            staging.rename(root)
        except OSError:  # another process unpacked it first
            if not (root / "aiecs").is_dir():
                raise
    except (OSError, zipfile.BadZipFile) as exc:
        raise ReferenceUnavailable(f"cannot unpack {wheel}: {exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root


class _StubPackage(importlib.abc.Loader):
    """An ``aiecs.*`` package without its ``__init__``: an empty module with ``__path__``."""

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        module.__stub__ = True  # type: ignore[attr-defined]
        if module.__name__ == "aiecs.llm":
            base = importlib.import_module("aiecs.llm.clients.base_client")
            module.LLMMessage = base.LLMMessage  # type: ignore[attr-defined]
            module.LLMResponse = base.LLMResponse  # type: ignore[attr-defined]


class _WheelFinder(importlib.abc.MetaPathFinder):
    """Serves ``aiecs`` and ``aiecs.*`` from the unpacked wheel, packages as stubs."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def find_spec(
        self, fullname: str, path: Any = None, target: Any = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "aiecs" and not fullname.startswith("aiecs."):
            return None
        location = self.root.joinpath(*fullname.split("."))
        if location.is_dir():
            spec = importlib.machinery.ModuleSpec(fullname, _StubPackage(), is_package=True)
            spec.submodule_search_locations = [str(location)]
            return spec
        source = location.with_suffix(".py")
        if source.is_file():
            return importlib.util.spec_from_file_location(fullname, source)
        return None


@dataclass(frozen=True)
class Reference:
    """Handles on the loaded reference modules."""

    root: Path
    modules: dict[str, ModuleType]

    def __getitem__(self, name: str) -> ModuleType:
        return self.modules[name]

    @property
    def context_engine(self) -> ModuleType:
        return self.modules["aiecs.domain.context.context_engine"]

    @property
    def policy(self) -> ModuleType:
        return self.modules["aiecs.domain.context.compression.policy"]


def _is_aiecs(name: str) -> bool:
    return name == "aiecs" or name.startswith("aiecs.")


@contextlib.contextmanager
def load(names: tuple[str, ...]) -> Iterator[Reference]:
    """The reference modules ``names`` (and what they import), for the ``with`` block only.

    Afterwards the finder is removed and every ``aiecs.*`` module it loaded is dropped from
    ``sys.modules`` (whatever was there before is put back), so nothing else sees them.
    Raises :class:`ReferenceUnavailable` when the wheel or a module cannot be had.
    """
    root = unpacked_root()
    saved = {k: v for k, v in sys.modules.items() if _is_aiecs(k)}
    for name in saved:
        del sys.modules[name]
    finder = _WheelFinder(root)
    sys.meta_path.insert(0, finder)
    try:
        modules: dict[str, ModuleType] = {}
        for name in names:
            try:
                modules[name] = importlib.import_module(name)
            except ImportError as exc:
                raise ReferenceUnavailable(
                    f"cannot load {name} from the aiecs wheel: {exc}"
                ) from exc
        yield Reference(root, modules)
    finally:
        sys.meta_path.remove(finder)
        for name in [k for k in sys.modules if _is_aiecs(k)]:
            del sys.modules[name]
        sys.modules.update(saved)
