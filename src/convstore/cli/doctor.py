"""``doctor``: what the server can do, what that means for durability, and whether every
stored session of the namespace is consistent."""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict, dataclass
from typing import Any

from convstore import codec, connections
from convstore.cli.common import EXIT_PROBLEMS, STORE, Context, emit_json
from convstore.errors import CodecError, ConvstoreError
from convstore.health import data_consistency_problems
from convstore.plans import transfer as tp
from convstore.store import ConversationStore

__all__ = ["register"]

_PAGE = 200


def register(commands: Any) -> None:
    doctor = commands.add_parser(
        "doctor", parents=[STORE], help="check the server and every stored session"
    )
    doctor.set_defaults(handler=_doctor)


@dataclass
class Finding:
    name: str
    status: str  # "ok", "warning" (worth knowing), "problem" (exit code 3)
    detail: str


_AOF = {
    True: "on: an acknowledged write survives a kill of the server (appendfsync everysec/"
    "always); a machine crash can lose up to 1 s unless appendfsync is always",
    False: "off: an acknowledged write survives only until the last RDB snapshot, if any",
}


def _server(store: ConversationStore, found: list[Finding]) -> dict[str, Any]:
    info = store.server_info()
    found.append(
        Finding("server", "ok", f"{info.name} {'.'.join(map(str, info.version))} ({info.mode})")
    )
    probe = store.driver.run(tp.probe(store.config))
    for name in ("lua", "streams"):
        found.append(
            Finding(name, "ok" if probe[name] else "problem", "works" if probe[name] else "failed")
        )
    found.append(Finding("cluster", "ok", "yes" if info.cluster else "no"))
    if info.emulated:
        found.append(Finding("aof", "warning", "fakeredis: in memory only, nothing survives"))
        found.append(Finding("maxmemory", "ok", "fakeredis: no eviction"))
        return asdict(info)
    found.append(Finding("aof", "ok" if info.aof_enabled else "warning", _AOF[info.aof_enabled]))
    memory = store.driver.run(tp.info_section("memory"))
    policy = memory.get("maxmemory_policy", "unknown")
    limit = int(memory.get("maxmemory", "0") or 0)
    if limit == 0:
        found.append(Finding("maxmemory", "ok", f"no limit (policy {policy} never applies)"))
    elif policy.startswith("allkeys-"):
        found.append(
            Finding(
                "maxmemory",
                "problem",
                f"{limit} bytes, policy {policy}: any conversation can be evicted",
            )
        )
    elif policy.startswith("volatile-"):
        found.append(
            Finding(
                "maxmemory",
                "warning",
                f"{limit} bytes, policy {policy}: sessions with a TTL can be evicted",
            )
        )
    else:
        found.append(
            Finding(
                "maxmemory",
                "ok",
                f"{limit} bytes, policy {policy}: writes fail when full, nothing is evicted",
            )
        )
    return asdict(info)


def _connection(store: ConversationStore, found: list[Finding]) -> None:
    started = time.perf_counter()
    store.ping()
    rtt = (time.perf_counter() - started) * 1000
    timeout = connections.socket_timeout(store.client)
    shown = "none (a dead server can block forever)" if timeout is None else f"{timeout:g} s"
    found.append(Finding("connection", "ok", f"ping {rtt:.2f} ms, socket timeout {shown}"))
    retry = store.retry
    detail = "none" if retry is None else f"{retry.attempts} attempts within {retry.deadline} s"
    found.append(Finding("retries", "ok", detail))


def session_problems(store: ConversationStore, key: str) -> list[str]:
    """What is wrong with one indexed session key (empty: consistent)."""
    state = store.driver.run(tp.session_state(store.config, key))
    if state.record is None:
        return []  # an expired session's index entry: dropped by the next list()
    try:
        session = codec.decode_session(state.record)
    except CodecError as exc:
        return [f"{key}: unreadable record ({exc}); run convstore migrate if it is an old layout"]
    problems = [f"{key}: {p}" for p in data_consistency_problems(session)]
    if session.generate_session_key() != key:
        problems.append(
            f"{key}: the record is stored under the wrong key (it is {session.generate_session_key()!r})"
        )
    if state.count_field is not None and state.count_field != state.stream_length:
        problems.append(
            f"{key}: message counter says {state.count_field}, the history holds {state.stream_length}"
        )
    return problems


def _doctor(args: argparse.Namespace, ctx: Context) -> int:
    found: list[Finding] = []
    problems: list[str] = []
    checked = 0
    with ctx.store(args) as store:
        _connection(store, found)
        server = _server(store, found)
        cursor, seen = "0", set()
        while True:
            cursor, keys = store.driver.run(tp.scan_index(store.config, cursor, _PAGE))
            for key in keys:
                if key in seen:
                    continue  # ZSCAN may return a key twice
                seen.add(key)
                checked += 1
                try:
                    problems += session_problems(store, key)
                except ConvstoreError as exc:
                    if not isinstance(exc, CodecError):
                        raise
                    problems.append(f"{key}: {exc}")
            if cursor == "0":
                break
    status = "problem" if problems else "ok"
    found.append(Finding("sessions", status, f"{checked} checked, {len(problems)} problem(s)"))
    failed = [f for f in found if f.status == "problem"]
    if args.json:
        emit_json(
            ctx,
            {
                "namespace": store.namespace,
                "server": {k: list(v) if isinstance(v, tuple) else v for k, v in server.items()},
                "checks": [asdict(f) for f in found],
                "sessions_checked": checked,
                "problems": problems,
                "ok": not failed,
            },
        )
    else:
        for f in found:
            mark = {"ok": "ok  ", "warning": "WARN", "problem": "FAIL"}[f.status]
            print(f"{mark} {f.name:<11} {f.detail}", file=ctx.out)
        for problem in problems:
            print(f"  - {problem}", file=ctx.out)
    return EXIT_PROBLEMS if failed else 0
