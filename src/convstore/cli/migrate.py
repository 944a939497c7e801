"""``migrate``: upgrade stored records to the current layout, in place, resumable."""

from __future__ import annotations

import argparse
from typing import Any

import convstore.adapters.contextengine.layout_step  # noqa: F401 - registers its step
from convstore.cli.common import EXIT_PROBLEMS, STORE, Context, emit_json
from convstore.layout_migrations import registered_steps, run_migrations

__all__ = ["register"]


def register(commands: Any) -> None:
    migrate = commands.add_parser(
        "migrate", parents=[STORE], help="upgrade stored records to the current layout"
    )
    migrate.add_argument(
        "--dry-run", action="store_true", help="only count what would change (run this first)"
    )
    migrate.add_argument("--cursor", default="0", help="resume from the cursor a run printed")
    migrate.add_argument("--batch", type=int, default=100, help="session keys per index page")
    migrate.add_argument(
        "--max-keys", type=int, default=None, help="stop after about this many keys (resumable)"
    )
    migrate.set_defaults(handler=_migrate)


def _migrate(args: argparse.Namespace, ctx: Context) -> int:
    with ctx.store(args) as store:
        report = run_migrations(
            store.driver,
            store.config,
            dry_run=args.dry_run,
            cursor=args.cursor,
            batch=args.batch,
            max_keys=args.max_keys,
        )
    steps = {s.name: f"{s.source} -> {s.target}" for s in registered_steps()}
    if args.json:
        emit_json(
            ctx,
            {
                "dry_run": report.dry_run,
                "keys_seen": report.keys_seen,
                "changed": report.changed,
                "steps": steps,
                "cursor": report.cursor,
                "complete": report.complete,
                "problems": report.problems,
            },
        )
    else:
        verb = "would change" if report.dry_run else "changed"
        print(f"{report.keys_seen} session key(s) examined", file=ctx.out)
        for name, count in report.changed.items():
            print(f"  {name} ({steps[name]}): {verb} {count}", file=ctx.out)
        if report.complete:
            print("complete", file=ctx.out)
        else:
            print(f"stopped early: resume with --cursor {report.cursor}", file=ctx.out)
        for problem in report.problems:
            print(f"problem: {problem}", file=ctx.out)
    return EXIT_PROBLEMS if report.problems else 0
