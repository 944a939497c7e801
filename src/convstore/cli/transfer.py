"""``export`` and ``import``: a namespace (or some sessions) as JSON Lines."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from convstore.cli.common import STORE, Context, emit_json, progress_printer
from convstore.transfer import export_jsonl, import_jsonl

__all__ = ["register"]


def register(commands: Any) -> None:
    export = commands.add_parser(
        "export", parents=[STORE], help="write sessions and their messages as JSON Lines"
    )
    export.add_argument("--output", "-o", default="-", help="the file to write (default: stdout)")
    export.add_argument(
        "--session", action="append", default=None, metavar="KEY", help="only this session (repeat)"
    )
    export.add_argument("--no-progress", action="store_true", help="no progress counter")
    export.set_defaults(handler=_export)
    importer = commands.add_parser(
        "import", parents=[STORE], help="restore a JSON Lines export (idempotent)"
    )
    importer.add_argument("input", metavar="FILE", help="the export to read ('-': stdin)")
    importer.add_argument("--no-progress", action="store_true", help="no progress counter")
    importer.set_defaults(handler=_import)


def _export(args: argparse.Namespace, ctx: Context) -> int:
    progress = progress_printer(not args.no_progress, "exported")
    with ctx.store(args) as store:
        if args.output == "-":
            report = export_jsonl(store, ctx.out, keys=args.session, progress=progress)
        else:
            with open(args.output, "w", encoding="utf-8", newline="\n") as out:
                report = export_jsonl(store, out, keys=args.session, progress=progress)
    if progress is not None:
        sys.stderr.write("\n")
    summary = {"sessions": report.sessions, "messages": report.messages}
    if args.output == "-":  # stdout is the export: the summary goes to stderr
        print(f"exported {report.sessions} session(s), {report.messages} message(s)", file=ctx.err)
    elif args.json:
        emit_json(ctx, summary)
    else:
        print(f"exported {report.sessions} session(s), {report.messages} message(s)", file=ctx.out)
    return 0


def _import(args: argparse.Namespace, ctx: Context) -> int:
    progress = progress_printer(not args.no_progress, "imported")
    with ctx.store(args) as store:
        if args.input == "-":
            report = import_jsonl(store, sys.stdin, progress=progress)
        else:
            with open(args.input, encoding="utf-8") as lines:
                report = import_jsonl(store, lines, progress=progress)
    if progress is not None:
        sys.stderr.write("\n")
    summary = {
        "sessions": report.sessions,
        "messages": report.messages_read,
        "messages_added": report.messages_added,
        "messages_already_present": report.messages_read - report.messages_added,
    }
    if args.json:
        emit_json(ctx, summary)
    else:
        print(
            f"imported {report.sessions} session(s), {report.messages_added} of "
            f"{report.messages_read} message(s) added ({summary['messages_already_present']} "
            "already present)",
            file=ctx.out,
        )
    return 0
