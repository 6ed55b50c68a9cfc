"""``flywheel programs list|show|promote|rollback|pin|unpin|config WORKER [VERSION]``.

``list`` shows the worker's versions (status, holdout gate); ``show`` its rollout: assignment,
live accuracy per serving version with its always-valid interval, latest decisions (``show
WORKER VERSION``: one version's record). ``promote``, ``rollback``, ``pin`` and ``unpin`` send
an operator command to the rollout service and print its answer (the command is audited there
with the caller as the actor). ``config`` shows the worker's canary settings, or changes them
live (``--share 0.2 --confidence 0.99 --min-samples 100 --max-samples 5000
--max-duration-s 86400 --margin 0.01 --enabled/--disabled``).
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from typing import Any

import asyncpg
from aiokafka.errors import KafkaError

from dspy_flywheel.bus.publish import producing
from dspy_flywheel.cli import cli_user, pct, print_json
from dspy_flywheel.contracts.events import RolloutConfig
from dspy_flywheel.contracts.validate import InvalidInput
from dspy_flywheel.rollout.config import SETTINGS, RolloutConfigError
from dspy_flywheel.rollout.operator import (
    CommandError,
    rollout_view,
    send_command,
    update_policy,
)
from dspy_flywheel.settings import FlywheelSettings
from dspy_flywheel.store.pool import connect

_HELP = {"effect_size": "the accuracy difference the live test detects fastest (default 0.05)"}


async def _run(args: argparse.Namespace) -> int:
    settings = FlywheelSettings()
    try:
        conn = await connect(settings.postgres, settings.db_schema)
    except (OSError, ValueError) as exc:
        print(f"error: cannot reach PostgreSQL: {exc}")
        return 1
    try:
        result: int = await args.action(args, settings, conn)
        return result
    except (CommandError, RolloutConfigError, InvalidInput) as exc:
        print(f"error: {exc}")
        return 2
    except asyncpg.UndefinedTableError:
        print("error: the rollout service has not run against this database yet")
        return 1
    except (KafkaError, OSError) as exc:
        print(f"error: Kafka unavailable: {exc!r}")
        return 1
    finally:
        await conn.close()


async def _list(args: argparse.Namespace, _: FlywheelSettings, conn: asyncpg.Connection) -> int:
    view = await rollout_view(conn, args.worker)
    if args.json:
        print_json(view["versions"])
        return 0
    print(f"{args.worker}: {view['assignment'] or 'no rollout yet'}")
    for v in view["versions"]:
        gate = v["gate"] or {}
        interval = gate.get("interval")
        evidence = (
            f"gain {100 * gate['gain']:+.1f} pts [{100 * interval[0]:+.1f}, "
            f"{100 * interval[1]:+.1f}] n={gate['n']}"
            if interval
            else "-"
        )
        print(
            f"  v{v['version']:<4} {v['status']:<24} holdout {pct(v['holdout_before'])} -> "
            f"{pct(v['holdout_after'])}  gate {evidence}"
        )
    return 0


async def _show(args: argparse.Namespace, _: FlywheelSettings, conn: asyncpg.Connection) -> int:
    view = await rollout_view(conn, args.worker)
    if args.version is not None:
        found = [v for v in view["versions"] if v["version"] == args.version]
        if not found:
            raise CommandError(f"{args.worker} has no version {args.version}")
        print_json(found[0])
        return 0
    if args.json:
        print_json(view)
        return 0
    print(f"{args.worker}: {view['assignment'] or 'no rollout yet'} (phase {view['phase']})")
    for name, live in view["live"].items():
        interval = live["interval"]
        bounds = f"[{pct(interval[0])}, {pct(interval[1])}]" if interval else ""
        print(f"  {name:<28} {pct(live['accuracy'])} of {live['labels']} labeled {bounds}")
    for d in view["decisions"][:10]:
        print(f"  {d['decided_at'][:19]} #{d['sequence']} {d['decision']}: {d['reason']}")
    return 0


async def _command(
    args: argparse.Namespace, settings: FlywheelSettings, conn: asyncpg.Connection
) -> int:
    async with producing(settings.kafka) as producer:
        sent = await send_command(
            conn,
            producer,
            settings.topics,
            args.worker,
            args.rollout_command,
            getattr(args, "version", None),
            requested_by=cli_user(),
            reason=args.reason,
            wait_s=args.wait,
        )
    answer = sent["answer"]
    if answer is None:
        print(f"sent {args.rollout_command} to the rollout service; no answer within {args.wait}s")
        return 1
    if answer["status"] == "refused":
        print(f"refused: {answer['reason']}")
        return 2
    for d in answer["decisions"]:
        print(f"{d['decision']}: {d['reason']}")
    return 0


async def _config(
    args: argparse.Namespace, settings: FlywheelSettings, _: asyncpg.Connection
) -> int:
    changes = {k: getattr(args, k) for k in SETTINGS if getattr(args, k) is not None}
    policy = await update_policy(settings.kafka, settings.topics, args.worker, changes, cli_user())
    print_json(policy.to_record())
    return 0


def register(sub: Any) -> None:
    programs = sub.add_parser("programs", help="program versions and their rollout")
    actions = programs.add_subparsers(dest="programs_action", metavar="ACTION", required=True)
    p = actions.add_parser("list", help="the worker's versions: status and holdout gate")
    p.add_argument("worker")
    p.add_argument("--json", action="store_true")
    p.set_defaults(action=_list)
    p = actions.add_parser("show", help="the rollout: shares, live accuracy, decisions")
    p.add_argument("worker")
    p.add_argument("version", nargs="?", type=int)
    p.add_argument("--json", action="store_true")
    p.set_defaults(action=_show)
    for name, what in (
        ("promote", "serve VERSION (default: the candidate) to every call"),
        ("rollback", "drop the candidate, or return to VERSION (default: the one before)"),
        ("pin", "serve VERSION (default: the current one); no automatic change until unpin"),
        ("unpin", "let the rollout service decide again"),
    ):
        p = actions.add_parser(name, help=what)
        p.add_argument("worker")
        if name != "unpin":
            p.add_argument("version", nargs="?", type=int)
        p.add_argument("--reason")
        p.add_argument("--wait", type=float, default=10.0, help="seconds to wait for the answer")
        p.set_defaults(action=_command, rollout_command=name)
    p = actions.add_parser("config", help="show or change the worker's canary settings")
    p.add_argument("worker")
    for f in fields(RolloutConfig):  # --share 0.2 ... --effect-size 0.1, typed as the setting
        if f.name in SETTINGS and f.name != "enabled":
            flag = "--" + f.name.replace("_", "-")
            p.add_argument(flag, dest=f.name, type=type(f.default), help=_HELP.get(f.name))
    toggle = p.add_mutually_exclusive_group()
    toggle.add_argument("--enabled", dest="enabled", action="store_true", default=None)
    toggle.add_argument("--disabled", dest="enabled", action="store_false")
    p.set_defaults(action=_config)
    for parser in actions.choices.values():
        parser.set_defaults(func=_run)
