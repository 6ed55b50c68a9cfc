"""``flywheel trigger set|show|clear|alerts`` and ``flywheel optimize WORKER``.

``trigger set`` reads the worker's current config from the compacted topic and merges the flags
given, so fields not mentioned keep their value; the running service picks it up within a tick.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import fields
from typing import Any

import asyncpg

from dspy_flywheel.cli import cli_user, print_json
from dspy_flywheel.compile.catalog import canonical_name
from dspy_flywheel.contracts.refs import WorkerRefs, check_job_refs
from dspy_flywheel.contracts.topics import Topics
from dspy_flywheel.contracts.validate import check_id, check_json_value
from dspy_flywheel.trigger.config import TriggerPolicyConfig, parse_param
from dspy_flywheel.trigger.config_topic import delete_config, read_configs, write_config
from dspy_flywheel.trigger.requests import request_optimization
from dspy_flywheel.trigger.settings import TriggerSettings

_CLEARED = {
    "no_window_seconds": "window_seconds",
    "no_interval": "interval_seconds",
    "no_cron": "cron",
}


def changes_from_args(args: argparse.Namespace, current: TriggerPolicyConfig) -> dict[str, Any]:
    given = {f.name: getattr(args, f.name, None) for f in fields(TriggerPolicyConfig)}
    changes: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    changes.update({k: None for flag, k in _CLEARED.items() if getattr(args, flag)})
    if args.param or args.clear_params:
        params = {} if args.clear_params else dict(current.optimizer_params)
        params.update(parse_param(p) for p in args.param or [])
        changes["optimizer_params_json"] = json.dumps(params, sort_keys=True)
    changes["updated_by"] = cli_user()
    return changes


async def _set(args: argparse.Namespace) -> int:
    settings = TriggerSettings()
    topic = settings.topics.trigger_config
    try:
        current = (await read_configs(settings.kafka, topic)).get(check_id(args.worker, "worker"))
        base = current or TriggerPolicyConfig(worker_id=args.worker)
        config = base.merged(changes_from_args(args, base))
        check_job_refs(  # only references the worker registered, or allow-listed ones
            config.worker_id,
            config.program_ref if config.program_ref != base.program_ref else None,
            config.metric_ref if config.metric_ref != base.metric_ref else None,
            WorkerRefs(base.program_ref, base.metric_ref),
            settings.ref_allow_list,
        )
    except ValueError as exc:  # ConfigError, InvalidInput, RefNotAllowed: all say what is wrong
        print(f"error: {exc}")
        return 2
    await write_config(settings.kafka, topic, config)
    print_json(config.to_record())
    return 0


async def _live_views(settings: TriggerSettings, worker: str | None) -> dict[str, Any]:
    """The service's live view from the DB; empty when the DB cannot be reached."""
    from dspy_flywheel.store.pool import connect
    from dspy_flywheel.trigger.store import fetch_views

    try:
        conn = await connect(settings.postgres, settings.db_schema)
    except (OSError, ValueError) as exc:
        print(f"(live view unavailable: {exc})")
        return {}
    try:
        return await fetch_views(conn, settings.state_scope, worker)
    except Exception as exc:  # the table may not exist yet before the service's first start
        print(f"(live view unavailable: {exc})")
        return {}
    finally:
        await conn.close()


async def _show(args: argparse.Namespace) -> int:
    settings = TriggerSettings()
    configs = await read_configs(settings.kafka, settings.topics.trigger_config)
    views = {} if args.no_live else await _live_views(settings, args.worker)
    workers = [args.worker] if args.worker else sorted(set(configs) | set(views))
    out = {
        w: {
            "config": configs[w].to_record() if w in configs else None,
            "live": {k: v for k, v in views.get(w, {}).items() if k != "config"} or None,
        }
        for w in workers
    }
    print_json(out)
    return 0 if not args.worker or args.worker in configs or args.worker in views else 1


async def _alerts(args: argparse.Namespace) -> int:
    """Recent alerts of this trigger deployment (its scope), newest first, as JSON."""
    from dspy_flywheel.store.pool import connect
    from dspy_flywheel.trigger.store import fetch_alerts

    if args.limit < 1:
        print("error: --limit must be at least 1")
        return 2
    settings = TriggerSettings()
    try:
        conn = await connect(settings.postgres, settings.db_schema)
    except (OSError, ValueError) as exc:
        print(f"error: cannot reach PostgreSQL: {exc}")
        return 1
    try:
        alerts = await fetch_alerts(
            conn, scope=settings.state_scope, worker_id=args.worker, limit=args.limit
        )
    except asyncpg.UndefinedTableError:
        alerts = []  # the trigger service has not run against this database yet
    finally:
        await conn.close()
    print_json(alerts)
    return 0


async def _clear(args: argparse.Namespace) -> int:
    settings = TriggerSettings()
    await delete_config(settings.kafka, settings.topics.trigger_config, args.worker)
    print(f"trigger config for {args.worker} removed")
    return 0


async def _optimize(args: argparse.Namespace) -> int:
    settings = TriggerSettings()
    try:
        check_id(args.worker, "worker")
        optimizer = canonical_name(args.optimizer) if args.optimizer is not None else None
        params = check_json_value(dict(parse_param(p) for p in args.param or []), "--param")
    except ValueError as exc:  # ConfigError, InvalidInput, OptimizerConfigError
        print(f"error: {exc}")
        return 2
    job_id = await request_optimization(
        settings.kafka,
        Topics(settings.topic_prefix),
        args.worker,
        optimizer=optimizer,
        params=params,
        requested_by=cli_user(),
    )
    print(json.dumps({"job_id": job_id, "worker_id": args.worker}))
    return 0


def _add_set_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("worker")
    p.add_argument("--policy", help="manual | periodic | performance (comma-combine)")
    p.add_argument("--threshold", type=float, help="fire when accuracy falls below this")
    p.add_argument("--window-size", type=int, help="last N labeled executions")
    p.add_argument("--window-seconds", type=int, help="only labels from the last S seconds")
    p.add_argument("--no-window-seconds", action="store_true", help="count window only")
    p.add_argument("--min-examples", type=int, help="labeled examples needed in the window")
    p.add_argument("--min-new-examples", type=int, help="new labels needed since last request")
    p.add_argument("--cooldown", dest="cooldown_seconds", type=int, help="seconds between requests")
    p.add_argument(
        "--interval", dest="interval_seconds", type=int, help="periodic policy: every S seconds"
    )
    p.add_argument("--no-interval", action="store_true")
    p.add_argument("--cron", help="periodic policy: 5-field cron (UTC)")
    p.add_argument("--no-cron", action="store_true")
    p.add_argument("--optimizer", help="e.g. BootstrapFewShot, MIPROv2")
    p.add_argument("--param", action="append", metavar="K=V", help="optimizer parameter")
    p.add_argument("--clear-params", action="store_true", help="drop existing parameters")
    p.add_argument("--worker-type")
    p.add_argument("--program-ref", help="module:attr building the worker's program")
    p.add_argument("--metric-ref", help="module:attr of the metric")
    toggle = p.add_mutually_exclusive_group()
    toggle.add_argument("--enable", dest="enabled", action="store_const", const=True)
    toggle.add_argument("--disable", dest="enabled", action="store_const", const=False)


def register(sub: Any) -> None:
    trigger = sub.add_parser("trigger", help="optimization trigger policies").add_subparsers(
        dest="action", required=True
    )
    p_set = trigger.add_parser("set", help="change a worker's trigger config (merged)")
    _add_set_flags(p_set)
    p_set.set_defaults(func=_set)
    p_show = trigger.add_parser("show", help="effective config (and live view)")
    p_show.add_argument("worker", nargs="?")
    p_show.add_argument("--no-live", action="store_true", help="config topic only")
    p_show.set_defaults(func=_show)
    p_alerts = trigger.add_parser("alerts", help="recent alerts, newest first (JSON)")
    p_alerts.add_argument("worker", nargs="?")
    p_alerts.add_argument("--limit", type=int, default=20)
    p_alerts.set_defaults(func=_alerts)
    p_clear = trigger.add_parser("clear", help="remove a worker's config (tombstone)")
    p_clear.add_argument("worker")
    p_clear.set_defaults(func=_clear)
    opt = sub.add_parser("optimize", help="request an optimization now (manual)")
    opt.add_argument("worker")
    opt.add_argument("--optimizer")
    opt.add_argument("--param", action="append", metavar="K=V")
    opt.set_defaults(func=_optimize)
