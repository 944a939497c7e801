"""Run the ``convstore`` command on a test backend: in process on fakeredis, else the
installed entry point as a subprocess with ``--url`` (as a user runs it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fakeredis
import pytest

from convstore import ConversationStore
from convstore.cli import main

COMMAND = Path(sys.executable).parent / "convstore"


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


class Cli:
    """``cli(*args)``: ``--url``/``--namespace`` of the test's backend are appended."""

    def __init__(
        self,
        url: str | None,
        namespace: str,
        server: fakeredis.FakeServer,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        self.url, self.namespace, self.server, self.capsys = url, namespace, server, capsys

    def __call__(self, *args: str, namespace: str | None = None, url: str | None = None) -> Result:
        ns = namespace or self.namespace
        if self.url is None and url is None:
            server = self.server

            def factory(parsed: Any) -> ConversationStore:
                client = fakeredis.FakeRedis(server=server)
                return ConversationStore(client, namespace=parsed.namespace or ns)

            self.capsys.readouterr()
            code = main([*args, "--namespace", ns], store_factory=factory)
            captured = self.capsys.readouterr()
            return Result(code, captured.out, captured.err)
        env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
        done = subprocess.run(
            [str(COMMAND), *args, "--url", url or str(self.url), "--namespace", ns],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        return Result(done.returncode, done.stdout, done.stderr)
