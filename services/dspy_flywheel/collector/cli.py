"""``flywheel collector run|policy|drops`` and ``flywheel dataset export|import|prune|...``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from dspy_flywheel.collector.policy import POLICY_COLUMNS, PolicyBook, set_policy
from dspy_flywheel.collector.settings import CollectorSettings
from dspy_flywheel.security.crypto import Cipher, generate_key
from dspy_flywheel.store import create_pool


@asynccontextmanager
async def _pool() -> AsyncIterator[tuple[CollectorSettings, asyncpg.Pool]]:
    """The collector's settings and a pool on its database (closed after)."""
    settings = CollectorSettings()
    pool = await create_pool(settings.postgres, settings.db_schema)
    try:
        yield settings, pool
    finally:
        await pool.close()


async def _run(args: argparse.Namespace) -> int:
    from dspy_flywheel.collector.app import run
    from dspy_flywheel.service_main import run_until_signal

    settings = CollectorSettings()
    if args.engine:
        settings = settings.model_copy(update={"engine": args.engine})
    await run_until_signal(run, settings)
    return 0


async def _policy_show(args: argparse.Namespace) -> int:
    async with _pool() as (settings, pool):
        book = PolicyBook(settings.default_policy())
        await book.refresh(pool, force=True)
        workers = [args.worker] if args.worker else ["*", *book.known_workers()]
        for worker in workers:
            policy = book.default if worker == "*" else book.for_worker(worker)
            fields = {c: getattr(policy, c) for c in POLICY_COLUMNS}
            print(json.dumps({"worker_id": worker, **fields}))
    return 0


async def _policy_set(args: argparse.Namespace) -> int:
    values = {c: getattr(args, c) for c in POLICY_COLUMNS if getattr(args, c, None) is not None}
    async with _pool() as (_, pool):
        await set_policy(pool, args.worker, **values)
    print(f"policy for {args.worker!r} updated: {values or 'no changes'}")
    return 0


async def _drops(args: argparse.Namespace) -> int:
    async with _pool() as (_, pool):
        rows = await pool.fetch(
            "SELECT worker_id, reason, count, last_at FROM collector_drops"
            " WHERE $1::text IS NULL OR worker_id = $1 ORDER BY worker_id, reason",
            args.worker,
        )
    for r in rows:
        print(
            f"{r['worker_id'] or '?':<24} {r['reason']:<28} {r['count']:>10}  {r['last_at']:%F %T}"
        )
    return 0


def _write_lines(path: str, lines: list[str]) -> None:
    if path == "-":
        sys.stdout.writelines(line + "\n" for line in lines)
        return
    with open(path, "w", encoding="utf-8") as out:
        out.writelines(line + "\n" for line in lines)


def _read_lines(path: str) -> list[str]:
    if path == "-":
        return sys.stdin.readlines()
    with open(path, encoding="utf-8") as source:
        return source.readlines()


async def _export(args: argparse.Namespace) -> int:
    from dspy_flywheel.store.datasets import export_records

    async with _pool() as (settings, pool):
        cipher = Cipher.from_settings(settings.encryption)
        records = await export_records(pool, cipher, args.worker, args.snapshot)
    _write_lines(args.out, [r.to_line() for r in records])
    print(f"exported {len(records)} examples", file=sys.stderr)
    return 0


async def _import(args: argparse.Namespace) -> int:
    from dspy_flywheel.collector.importer import import_lines

    lines = _read_lines(args.file)
    async with _pool() as (settings, pool):
        cipher = Cipher.from_settings(settings.encryption)
        read, inserted = await import_lines(pool, cipher, lines)
    print(f"read {read} examples, inserted {inserted} (existing event ids skipped)")
    return 0


async def _prune(args: argparse.Namespace) -> int:
    from dspy_flywheel.collector.maintenance import apply_retention

    async with _pool() as (settings, pool):
        book = PolicyBook(settings.default_policy())
        deleted = await apply_retention(pool, book, settings.processed_ttl_h)
    for key, n in sorted(deleted.items()):
        print(f"{key}: {n} deleted")
    return 0


async def _snapshots(args: argparse.Namespace) -> int:
    from dspy_flywheel.store.datasets import list_snapshots

    async with _pool() as (_, pool):
        for s in await list_snapshots(pool, args.worker):
            print(
                f"#{s.id} {s.worker_id} v{s.version} {len(s.example_ids)} examples "
                f"{s.purpose!r} {s.created_at:%F %T}"
            )
    return 0


async def _rekey(args: argparse.Namespace) -> int:
    from dspy_flywheel.collector.maintenance import rekey

    async with _pool() as (settings, pool):
        cipher = Cipher.from_settings(settings.encryption)
        n = await rekey(pool, cipher)
    print(f"re-encrypted {n} examples under key {cipher.active_key!r}")
    return 0


def _keygen(args: argparse.Namespace) -> int:
    print(f"{args.kid}:{generate_key()}")
    return 0


def _policy_flags(parser: argparse.ArgumentParser) -> None:
    bools = {"accept_unlabeled_success", "drop_duplicates"}
    kinds = {"max_field_chars": int, "retention_max_count": int}
    for column in POLICY_COLUMNS:
        flag = "--" + column.replace("_", "-")
        if column in bools:
            parser.add_argument(
                flag, type=lambda v: v.lower() in ("1", "true", "yes", "on"), metavar="BOOL"
            )
        else:
            parser.add_argument(flag, type=kinds.get(column, float))


def register(sub: Any) -> None:
    collector = sub.add_parser("collector", help="training-example collector").add_subparsers(
        dest="action", required=True
    )
    run = collector.add_parser("run", help="run the collector until SIGINT/SIGTERM")
    run.add_argument("--engine", choices=["faust", "kafka"])
    run.set_defaults(func=_run)
    show = collector.add_parser("policy", help="show quality/retention policies")
    show.add_argument("--worker")
    show.set_defaults(func=_policy_show)
    setp = collector.add_parser("set-policy", help="override a worker's policy")
    setp.add_argument("--worker", required=True)
    _policy_flags(setp)
    setp.set_defaults(func=_policy_set)
    drops = collector.add_parser("drops", help="dropped events by worker and reason")
    drops.add_argument("--worker")
    drops.set_defaults(func=_drops)

    dataset = sub.add_parser("dataset", help="training datasets").add_subparsers(
        dest="action", required=True
    )
    export = dataset.add_parser("export", help="decrypted examples as JSONL")
    export.add_argument("--out", default="-")
    export.add_argument("--worker")
    export.add_argument("--snapshot", type=int)
    export.set_defaults(func=_export)
    imp = dataset.add_parser("import", help="load JSONL examples (anonymized, encrypted)")
    imp.add_argument("file", nargs="?", default="-")
    imp.set_defaults(func=_import)
    dataset.add_parser("prune", help="apply retention policies now").set_defaults(func=_prune)
    snaps = dataset.add_parser("snapshots", help="list dataset snapshots")
    snaps.add_argument("--worker")
    snaps.set_defaults(func=_snapshots)
    dataset.add_parser("rekey", help="re-encrypt examples under the active key").set_defaults(
        func=_rekey
    )
    keygen = dataset.add_parser("keygen", help="print a new kid:<base64> encryption key")
    keygen.add_argument("--kid", default="k1")
    keygen.set_defaults(func=_keygen)
