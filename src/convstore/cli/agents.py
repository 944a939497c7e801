"""``convstore tail`` and ``convstore demo-agents``: watching and demonstrating agent traffic."""

from __future__ import annotations

import argparse
from typing import Any

from convstore.cli.common import Context

__all__ = ["register"]


def register(commands: Any) -> None:
    from convstore.tail import add_tail_parser

    demo = commands.add_parser(
        "demo-agents", help="a controller and two agents talking through inboxes, with a tail"
    )
    demo.set_defaults(handler=_demo_agents)
    add_tail_parser(commands).set_defaults(handler=_tail)


def _demo_agents(args: argparse.Namespace, ctx: Context) -> int:
    from convstore.demo_agents import main as demo_agents_main

    return demo_agents_main(ctx.out)


def _tail(args: argparse.Namespace, ctx: Context) -> int:
    from convstore.tail import tail_command

    return tail_command(args, ctx.out)
