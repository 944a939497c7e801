"""Ratios, targets, the terminal table, the JSON file and the PNG chart."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from benchmarks.common import CONVSTORE, LANGCHAIN, LIST_STORE, LLAMA, Result, Results

Key = tuple[str, str, str, int]


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "ms":
        return f"{value:.3f} ms" if value < 10 else f"{value:,.1f} ms"
    if unit == "B/msg":
        return f"{value:,.0f} B"
    return f"{value:,.0f}"


def _label(key: Key) -> str:
    workload, variant, _mode, n = key
    return f"{workload} {variant} N={n:,}"


def ratios(results: Results) -> list[dict[str, Any]]:
    """One row per convstore figure: its value over its baseline's, from the same run."""
    by_key: dict[tuple[Key, str], Result] = {(r.key, r.subject): r for r in results.items}
    out: list[dict[str, Any]] = []
    for r in results.items:
        if r.role != "convstore":
            continue
        base_name = results.baseline_of[r.key]
        base = by_key[(r.key, base_name)]
        assert r.value is not None and base.value
        out.append(
            {
                "workload": r.workload,
                "variant": r.variant,
                "mode": r.mode,
                "n": r.n,
                "unit": r.unit,
                "better": r.better,
                "convstore": r.value,
                "baseline": base_name,
                "baseline_value": base.value,
                "ratio": r.value / base.value,
                "ratio_meaning": (
                    "convstore / baseline throughput (higher is better)"
                    if r.better == "higher"
                    else "convstore / baseline time or bytes (lower is better)"
                ),
            }
        )
    return out


def _target(
    target: str, subject: str, value: float | None, op: str, threshold: float, detail: str
) -> dict[str, Any]:
    met = None if value is None else (value >= threshold if op == ">=" else value <= threshold)
    return {
        "target": target,
        "subject": subject,
        "value": value,
        "op": op,
        "threshold": threshold,
        "met": met,
        "detail": detail,
    }


def targets(results: Results, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every target of issue 5, evaluated on this run's ratios."""
    out: list[dict[str, Any]] = []
    ratio = {(r["workload"], r["variant"], r["mode"], r["n"]): r["ratio"] for r in rows}
    conv = {r.key: r.value for r in results.items if r.role == "convstore"}
    for (workload, variant, mode, n), value in ratio.items():
        where = f"{mode} {variant} N={n:,}"
        if workload == "W1":
            out.append(
                _target(
                    "W1 >= 0.85x raw one-call XADD",
                    where,
                    value,
                    ">=",
                    0.85,
                    "convstore msg/s / raw XADD msg/s",
                )
            )
        elif workload == "W2":
            out.append(
                _target(
                    "W2 >= 0.5x raw pipelined XADD",
                    where,
                    value,
                    ">=",
                    0.5,
                    "convstore msg/s / raw pipelined msg/s",
                )
            )
        elif workload == "W3":
            out.append(
                _target(
                    "W3 <= 1.3x raw XRANGE + msgpack",
                    where,
                    value,
                    "<=",
                    1.3,
                    "convstore ms / raw ms",
                )
            )
        elif workload == "W4":
            out.append(
                _target(
                    "W4 <= 1.5x raw XREVRANGE COUNT 20",
                    where,
                    value,
                    "<=",
                    1.5,
                    "convstore ms / raw ms",
                )
            )
        elif workload == "W7" and variant == "stream+ids+session":
            out.append(
                _target(
                    "W7 <= 1.15x raw stream + msgpack bytes",
                    where,
                    value,
                    "<=",
                    1.15,
                    "convstore bytes/msg (stream + ids + session) / raw stream",
                )
            )
    for mode in ("sync", "async"):
        w4 = sorted((k[3], v) for k, v in conv.items() if k[0] == "W4" and k[2] == mode)
        if len(w4) >= 2 and w4[0][1]:
            (n_lo, lo), (n_hi, hi) = w4[0], w4[-1]
            assert lo is not None and hi is not None
            out.append(
                _target(
                    f"W4 N={n_hi:,} within 1.3x of N={n_lo:,}",
                    mode,
                    hi / lo,
                    "<=",
                    1.3,
                    "convstore last-20 time at the largest N / at the smallest",
                )
            )
    w8 = [v for k, v in conv.items() if k[0] == "W8"]
    w1 = [v for k, v in conv.items() if k[0] == "W1" and k[2] == "sync"]
    if w8 and w1 and w8[0] and w1[0]:
        out.append(
            _target(
                ">= 3x sync single-connection W1",
                "W8 async",
                w8[0] / w1[0],
                ">=",
                3.0,
                "convstore W8 msg/s / convstore sync W1 msg/s",
            )
        )
    for r in results.items:
        if r.role != "peer" or r.value is None:
            continue
        ours = conv.get(r.key)
        if ours is None:
            continue
        factor = ours / r.value if r.better == "higher" else r.value / ours
        out.append(
            _target(
                f"ahead of {r.subject}",
                _label(r.key) + f" ({r.mode})",
                factor,
                ">=",
                1.0,
                "how many times better convstore is (>1 = ahead)",
            )
        )
    return out


def build(results: Results, meta: dict[str, Any], peers: dict[str, str]) -> dict[str, Any]:
    rows = ratios(results)
    return {
        "meta": meta,
        "peers": peers,
        "results": [r.as_json() for r in results.items],
        "ratios": rows,
        "targets": targets(results, rows),
    }


# --------------------------------------------------------------------------- table


def table_rows(report: dict[str, Any]) -> list[list[str]]:
    """Header + one row per convstore figure, with its baseline, ratio, and the others."""
    others: dict[tuple[Any, ...], dict[str, float | None]] = {}
    for r in report["results"]:
        if r["role"] in ("reference", "peer"):
            key = (r["workload"], r["variant"], r["mode"], r["n"])
            others.setdefault(key, {})[r["subject"]] = r["value"]
    out = [
        [
            "workload",
            "mode",
            "N",
            "convstore",
            "baseline",
            "baseline value",
            "ratio",
            "list store",
            "langchain",
            "llama-index",
        ]
    ]
    for row in report["ratios"]:
        key = (row["workload"], row["variant"], row["mode"], row["n"])
        extra = others.get(key, {})
        unit = row["unit"]
        out.append(
            [
                f"{row['workload']} {row['variant']}",
                row["mode"],
                f"{row['n']:,}",
                f"{_fmt(row['convstore'], unit)} {'' if unit in ('ms', 'B/msg') else unit}".strip(),
                row["baseline"],
                _fmt(row["baseline_value"], unit),
                f"{row['ratio']:.2f}x",
                _fmt(extra.get(LIST_STORE), unit),
                _fmt(extra.get(LANGCHAIN), unit) if LANGCHAIN in extra else "n/a",
                _fmt(extra.get(LLAMA), unit) if LLAMA in extra else "n/a",
            ]
        )
    return out


def target_rows(report: dict[str, Any]) -> list[list[str]]:
    out = [["target", "where", "value", "need", "status"]]
    for t in report["targets"]:
        status = "n/a" if t["met"] is None else ("met" if t["met"] else "MISSED")
        value = "-" if t["value"] is None else f"{t['value']:.2f}"
        out.append([t["target"], t["subject"], value, f"{t['op']} {t['threshold']}", status])
    return out


def markdown(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(lines)


def print_tables(report: dict[str, Any]) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(markdown(table_rows(report)))
        print()
        print(markdown(target_rows(report)))
        return
    console = Console(width=None if sys.stdout.isatty() else 200)
    for title, rows in (
        ("convstore vs baselines (same run)", table_rows(report)),
        ("targets (issue 5)", target_rows(report)),
    ):
        table = Table(title=title)
        for name in rows[0]:
            table.add_column(
                name,
                justify="left" if name in ("workload", "target", "where", "baseline") else "right",
            )
        for row in rows[1:]:
            style = "red" if row[-1] == "MISSED" else None
            table.add_row(*row, style=style)
        console.print(table)


# --------------------------------------------------------------------------- files


def write_json(report: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")


def write_chart(report: dict[str, Any], path: Path) -> str:
    """The PNG, or the reason there is none."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install 'convstore[bench]'): no chart"
    rows = report["ratios"]
    labels = [f"{r['workload']} {r['variant']} {r['mode']} N={r['n']:,}" for r in rows]
    # express everything as "higher is better" so one axis reads the same way
    values = [r["ratio"] if r["better"] == "higher" else 1 / r["ratio"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(
        1, 2, figsize=(15, max(6, 0.28 * len(rows))), gridspec_kw={"width_ratios": [3, 2]}
    )
    colors = ["tab:green" if v >= 1 else "tab:orange" for v in values]
    ax1.barh(range(len(rows)), values, color=colors)
    ax1.set_yticks(range(len(rows)), labels, fontsize=7)
    ax1.invert_yaxis()
    ax1.axvline(1.0, color="black", linewidth=0.8)
    ax1.set_xlabel("convstore relative to its raw baseline (>1 = better than baseline)")
    ax1.set_title("convstore / raw redis-py baseline, same run")
    subjects: dict[str, float] = {}
    for r in report["results"]:
        if r["workload"] == "W1" and r["mode"] == "sync" and r["value"]:
            subjects[r["subject"]] = r["value"]
    names = list(subjects)
    ax2.bar(
        range(len(names)),
        [subjects[n] for n in names],
        color=["tab:blue" if n == CONVSTORE else "tab:gray" for n in names],
    )
    ax2.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
    ax2.set_ylabel("messages / s")
    ax2.set_title("W1 append, one call per message (sync)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)
