"""The goal table at the end of the run: goals, peers, per-op costs, server-side cost.

rich tables when rich is installed (the ``bench`` extra), markdown otherwise; the same rows
either way, so the README's "Final table" can be pasted from a run.
"""

from __future__ import annotations

import sys
from typing import Any

from benchmarks.common import AIECS, LANGCHAIN, LLAMA

PEER_COLUMNS = (LANGCHAIN, LLAMA, AIECS)


def _num(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "ms":
        return f"{value:.3f} ms" if value < 10 else f"{value:,.1f} ms"
    if unit in ("µs/msg",):
        return f"{value:,.1f} µs"
    if unit == "B/msg":
        return f"{value:,.0f} B"
    return f"{value:,.0f} {unit}"


def _status(met: bool | None) -> str:
    return "n/a" if met is None else ("met" if met else "MISSED")


def _peer_cell(goal: dict[str, Any], name: str, state: str) -> str:
    fact = goal["peers"].get(name)
    if fact is None:
        return "n/a" if state.startswith("installed") else "not installed"
    if fact.get("value") is None:
        return str(fact.get("note", "n/a"))
    factor = fact["convstore_vs_peer"]
    return f"{_num(fact['value'], goal['unit'])} (convstore {factor:.2f}x)"


def goal_rows(section: dict[str, Any]) -> list[list[str]]:
    header = ["goal", "convstore", "baseline", "ratio", "target", "status", "rounds"]
    out = [header + list(PEER_COLUMNS)]
    for g in section["goals"]:
        ratio = "-" if g["ratio"] is None else f"{g['ratio']:.2f}x"
        runs = ", ".join(f"{x:.2f}" for x in g["runs"])
        base = f"{g['baseline']}: {_num(g['baseline_value'], g['unit'])}"
        row = [g["what"], _num(g["convstore"], g["unit"]), base, ratio]
        row += [f"{g['op']} {g['target']}", _status(g["met"]), runs]
        row += [_peer_cell(g, name, section["peers"].get(name, "")) for name in PEER_COLUMNS]
        out.append(row)
    return out


def per_op_rows(section: dict[str, Any]) -> list[list[str]]:
    out = [["one append, per message", "wall µs", "client CPU µs", "Redis CPU µs"]]
    for name, v in section["per_op_us"].items():
        out.append([name, f"{v['wall']:.1f}", f"{v['client']:.1f}", f"{v['server']:.1f}"])
    return out


def server_rows(section: dict[str, Any]) -> list[list[str]]:
    out = [["variant (INFO commandstats delta)", "command", "calls/op", "µs/call", "µs/op"]]
    for variant, table in section["server_side"].items():
        for command, v in table.items():
            if v["usec_per_op"] < 0.05 and v["calls_per_op"] < 0.01:
                continue  # the sampler's own INFO/SCRIPT calls and other noise
            out.append(
                [
                    variant,
                    command,
                    f"{v['calls_per_op']:.3f}",
                    f"{v['usec_per_call']:.2f}",
                    f"{v['usec_per_op']:.2f}",
                ]
            )
    return out


def markdown(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(lines)


def print_goals(section: dict[str, Any]) -> None:
    title = (
        f"issue 11 goals (same run; {section['server']}; reply parser: "
        f"{section['reply_parser']}; median of {section['rounds']} interleaved rounds)"
    )
    tables = [
        ("per-operation cost, one append (medians)", per_op_rows(section)),
        ("server-side cost per operation (INFO commandstats, per variant)", server_rows(section)),
        (title, goal_rows(section)),
    ]
    try:
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table
    except ImportError:
        for name, rows in tables:
            print(f"\n{name}\n")
            print(markdown(rows))
        _footer(section, print)
        return
    console = Console(width=None if sys.stdout.isatty() else 240)
    for name, rows in tables:
        table = Table(title=escape(name))
        for i, column in enumerate(rows[0]):
            table.add_column(escape(column), justify="left" if i == 0 else "right", overflow="fold")
        for row in rows[1:]:
            cells = [escape(c) for c in row]
            table.add_row(*cells, style="red" if "MISSED" in row else None)
        console.print(table)
    _footer(section, lambda text: console.print(escape(text)))


def _footer(section: dict[str, Any], out: Any) -> None:
    s = section["summary"]
    out(f"goals: {s['met']} met, {s['missed']} missed, {s['not_judged']} not judged")
    for name, how in section["peers_async_driven"].items():
        out(f"async peer {name}: {how}")
