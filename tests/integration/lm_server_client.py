"""One client process of tests/integration/test_lm_server.py: a worker or a job.

    python lm_server_client.py ROLE CALLS     # settings from FLYWHEEL_LM_*

Sends CALLS distinct prompts on 2 threads through ``build_lm`` (the shared server); each asks
for a code that only its own prompt names, held by a JSON schema. Prints one JSON line: the
server it used, each reply with the code it asked for, and this process's engine counters.
"""

from __future__ import annotations

import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor

from dspy.lm15 import Config, Message, Request, TextPart

from dspy_flywheel.lm import build_lm, engine_stats


def ask(engine: object, code: str, padding: int) -> dict[str, object]:
    schema = {
        "type": "object",
        "properties": {"code": {"type": "string", "enum": [code]}},
        "required": ["code"],
        "additionalProperties": False,
    }
    text = f"{'Please note. ' * padding}Reply with the code {code} as JSON."
    request = Request(
        model="test",
        messages=(Message.user([TextPart(text)]),),
        config=Config(
            max_tokens=32,
            response_format={"type": "json_schema", "schema": schema, "name": "reply"},
        ),
    )
    response = engine.complete(request)  # type: ignore[attr-defined]
    return {
        "code": code,
        "answer": json.loads(response.message.text or "{}"),
        "prompt_tokens": response.usage.input_tokens,
    }


def main() -> None:
    role, calls = sys.argv[1], int(sys.argv[2])
    lm = build_lm()
    engine = lm.engine
    with ThreadPoolExecutor(max_workers=2) as pool:
        replies = list(
            pool.map(lambda i: ask(engine, f"{role}-{i}-{os.getpid()}", i), range(calls))
        )
    report = {
        "role": role,
        "address": engine.address,
        "server_pid": engine.info.pid,
        "replies": replies,
        "stats": engine_stats(lm).as_dict(),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
