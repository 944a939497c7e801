"""Run the ``convstore`` command on a test backend: the installed entry point as a
subprocess with ``--url`` (as a user runs it) on the real Redis, and in process (``main``
with a store of the backend) on fakeredis and Valkey, which keeps the suite fast."""

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
        *,
        subprocess: bool,
    ) -> None:
        self.url, self.namespace, self.server, self.capsys = url, namespace, server, capsys
        self.subprocess = subprocess

    def __call__(self, *args: str, namespace: str | None = None, url: str | None = None) -> Result:
        ns = namespace or self.namespace
        if not (self.subprocess or url is not None):
            server, target = self.server, self.url

            def factory(parsed: Any) -> ConversationStore:
                if target is not None:
                    return ConversationStore.from_url(target, namespace=parsed.namespace or ns)
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
