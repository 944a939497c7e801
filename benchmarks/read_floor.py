"""How close a full history read can get to a raw XRANGE + ``msgpack.unpackb``: the floor
under issue 11's read-all goal (<= 1.3x), and what the collector's heap does to the ratio.

``python -m benchmarks.read_floor [--n 5000] [--rounds 8] [--ballast 160000] [--reads 1] [--no-pin]``

``--n 20 --reads 200`` is the floor under the newest-20 goal: a read of 20 rows is a round
trip of about 100 µs, so each round times ``--reads`` reads of each variant in a row.

One history of ``n`` messages stored by convstore and the same messages in a raw stream,
on a private pinned redis-server (``benchmarks/server.py``); nine reads, interleaved, the
median of the rounds:

- **XRANGE only**, of each stream: the transfer and redis-py's parsing (a dict per row),
  nothing decoded; and of convstore's stream **unparsed**, the rows as Redis sent them
  (``connections.raw_reply_client``, which convstore's readers use);
- **raw**: XRANGE + ``msgpack.unpackb`` of each payload (the goal's baseline);
- **least ContextEngine rebuild**: convstore's stream, unparsed, each payload unpacked and
  rebuilt as ``{role, content, timestamp, metadata}`` with nothing checked or formatted
  (the timestamp stays a datetime, the message id stays bytes): less than any reader that
  returns ContextEngine dicts can do;
- **least + the safety scan**: the same, plus convstore's check that a payload can hold no
  bytes key and no nesting beyond the limit (``codec.plain_entry``, one C-level scan of
  the bytes; the walk only where it cannot tell);
- **least + the scan + ISO timestamp and id text**: also the timestamp and the message id
  as the ContextEngine form carries them (``isotime.utc_isoformat``,
  ``codec.decode_message_id``: one call each, which convstore's reader inlines);
- **convstore**: ``messages.history(key)`` (every row checked for what msgpack cannot rule
  out, an ISO timestamp, the message id as text);
- **convstore typed**: ``messages.read(key)``, the same rows checked the same way, returned
  as ``StoredMessage`` values (the timestamp a datetime, the id text made when asked).

Each set of rounds runs twice: on a **lean heap** (``gc.freeze()`` first, as
``benchmarks.common.interleaved`` does, so a collection walks only what the reads
allocate), and with a **ballast** of ``--ballast`` live objects the collector must walk,
like the heap of a process that imports langchain, llama-index and pydantic (about 160k
tracked objects, the goal run's own). Each full collection then costs both sides the same
tens of ms, which pulls every ratio towards 1.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import msgpack
import redis

from benchmarks.baselines import RawStream
from benchmarks.common import interleaved, make_messages, timed
from benchmarks.server import can_pin, on_own_server
from benchmarks.workloads import new_session
from convstore import ConversationStore, codec
from convstore.connections import raw_reply_client
from convstore.isotime import utc_isoformat

RAW = "raw: XRANGE + msgpack.unpackb"
READS = (
    "XRANGE only, raw stream",
    "XRANGE only, convstore's stream",
    "XRANGE only, convstore's stream, unparsed",
    RAW,
    "least ContextEngine rebuild",
    "least + the safety scan",
    "least + the scan + ISO timestamp and id text",
    "convstore messages.history",
    "convstore messages.read (typed values)",
)


def least_rebuild(
    rows: list[Any], *, scan: bool = False, formatted: bool = False
) -> list[dict[str, Any]]:
    """ContextEngine dicts from convstore's unparsed rows with nothing checked or formatted
    (``scan``: each payload scanned as convstore's reader scans it; ``formatted``: the
    timestamp as ISO text and the message id as text, with the codec's public helpers)."""
    out = []
    for _, fields in rows:  # unparsed: [b"m", mid, b"d", payload]
        mid, payload = fields[1], fields[3]
        obj = msgpack.unpackb(payload, timestamp=3)
        _, role, content, moment, meta = obj
        if scan and not codec.plain_entry(payload, role, content):
            codec.check_entry(obj)
        if formatted:
            moment, mid = utc_isoformat(moment), codec.decode_message_id(mid)
        meta["message_id"] = mid
        out.append({"role": role, "content": content, "timestamp": moment, "metadata": meta})
    return out


def rounds_of(
    reads: dict[str, Callable[[], Any]], rounds: int, *, lean: bool, repeat: int = 1
) -> dict[str, float]:
    """Median ms per read of each variant, interleaved (``lean``: on a frozen heap), each
    round timing ``repeat`` reads of a variant in a row."""

    def times(read: Callable[[], Any]) -> Callable[[], float]:
        def go() -> None:
            for _ in range(repeat):
                read()

        return lambda: timed(go) * 1000 / repeat

    timed_reads = {name: times(read) for name, read in reads.items()}
    got = interleaved(timed_reads, rounds + 1, lean=lean)  # round 0 warms up
    return {name: statistics.median(values[1:]) for name, values in got.items()}


def measure(
    client: redis.Redis, n: int, rounds: int, ballast: int, repeat: int = 1
) -> dict[str, Any]:
    store = ConversationStore(client, namespace="readfloor")
    raw = RawStream(client, "readfloor:raw")
    msgs = make_messages(n)
    key = store.sessions.save(new_session("read-floor"))
    for start in range(0, n, 1000):
        store.messages.append_many(key, [m.as_dict() for m in msgs[start : start + 1000]])
    raw.append_pipelined("s", msgs)
    stream = store.config.keyspace.session(key).messages
    unparsed = raw_reply_client(client)
    if unparsed is None:
        raise RuntimeError("the floor needs a client that can skip redis-py's row parsing")

    def xrange() -> Any:
        return unparsed.execute_command("XRANGE", stream, "-", "+")

    reads: dict[str, Callable[[], Any]] = {
        READS[0]: lambda: client.execute_command("XRANGE", raw.key("s"), "-", "+"),
        READS[1]: lambda: client.execute_command("XRANGE", stream, "-", "+"),
        READS[2]: xrange,
        READS[3]: lambda: raw.read_all("s"),
        READS[4]: lambda: least_rebuild(xrange()),
        READS[5]: lambda: least_rebuild(xrange(), scan=True),
        READS[6]: lambda: least_rebuild(xrange(), scan=True, formatted=True),
        READS[7]: lambda: store.messages.history(key),
        READS[8]: lambda: store.messages.read(key),
    }
    ours = store.messages.history(key)
    if [m["content"] for m in ours] != [m.content for m in msgs] or ours != least_rebuild(
        xrange(), scan=True, formatted=True
    ):
        raise RuntimeError("the formatted least rebuild does not read what convstore reads")
    if [m.as_dict() for m in store.messages.read(key)] != ours:
        raise RuntimeError("messages.read does not read what messages.history reads")
    try:
        lean = rounds_of(reads, rounds, lean=True, repeat=repeat)
        objects = [{"i": i} for i in range(ballast)]  # tracked, alive through the rounds
        gc.collect()
        started = time.perf_counter()
        gc.collect()
        full_collection_ms = (time.perf_counter() - started) * 1000
        weighed = rounds_of(reads, rounds, lean=False, repeat=repeat)
        del objects
    finally:
        for found in client.scan_iter(match="readfloor*", count=1000):
            client.delete(found)
    return {"lean": lean, "ballast": weighed, "full_collection_ms": full_collection_ms}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.read_floor")
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--ballast", type=int, default=160_000)
    p.add_argument("--reads", type=int, default=1, help="reads per variant in each round")
    p.add_argument("--no-pin", action="store_true")
    a = p.parse_args(argv)
    pin = not a.no_pin and can_pin()
    got = on_own_server(
        pin,
        "benchmarks.read_floor",
        lambda client: measure(client, a.n, a.rounds, a.ballast, a.reads),
    )
    report: dict[str, Any] = {
        "pinned": pin,
        "messages": a.n,
        "rounds": a.rounds,
        "reads_per_round": a.reads,
        "ballast_objects": a.ballast,
        "full_collection_ms_with_ballast": round(got["full_collection_ms"], 1),
    }
    for heap in ("lean", "ballast"):
        ms = got[heap]
        report[heap] = {
            "ms_per_read": {k: round(v, 4) for k, v in ms.items()},
            "us_per_row": {k: round(v * 1000 / a.n, 2) for k, v in ms.items()},
            "vs_raw": {k: round(v / ms[RAW], 3) for k, v in ms.items()},
        }
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
