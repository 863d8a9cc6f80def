"""`aisdk gen | lint | subjects`: the contracts and their registry."""

from __future__ import annotations

import argparse
import json
from typing import Any

from cli import extras, registry

# protoc's Python generator and the betterproto flavour; a missing buf is
# reported by codegen.toolchain, which looks for it.
_GEN_MODULES = ("grpc_tools", "betterproto")


def cmd_gen(args: argparse.Namespace) -> int:
    extras.require("aisdk gen", extras.DEV, _GEN_MODULES)
    from codegen import toolchain

    out = toolchain.generate()
    print(f"generated {out}")
    return 0


def cmd_lint(args: argparse.Namespace) -> int:
    from codegen import toolchain

    toolchain.lint()
    print("buf lint: clean")
    return 0


def subject_rows(tenant: str | None) -> list[dict[str, Any]]:
    """The registry as plain rows: what `aisdk subjects --json` prints."""
    rows = []
    for spec in registry.load().SUBJECTS:
        d = spec.durability
        rows.append(
            {
                "subject": spec.subject(tenant) if tenant else spec.template,
                "key": spec.key,
                "service": spec.service,
                "rpc": spec.rpc,
                "pattern": spec.pattern.value,
                "queue_group": spec.queue_group,
                "request_type": spec.request_name,
                "reply_type": spec.reply_name,
                "timeout_ms": spec.timeout_ms,
                "durable": d is not None,
                "durability": None
                if d is None
                else {
                    "retention": d.retention,
                    "max_deliver": d.max_deliver,
                    "ack_wait_ms": d.ack_wait_ms,
                    "backoff_ms": list(d.backoff_ms),
                    "duplicate_window_ms": d.duplicate_window_ms,
                    "max_age_s": d.max_age_s,
                },
                "reply_event": spec.reply_event,
                "schema_version": spec.schema_version,
                "source": spec.source,
            }
        )
    return rows


def cmd_subjects(args: argparse.Namespace) -> int:
    rows = subject_rows(args.tenant)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(r["subject"]) for r in rows)
    for r in rows:
        extra = []
        if r["queue_group"]:
            extra.append(f"queue={r['queue_group']}")
        if r["durable"]:
            extra.append("durable")
        if r["pattern"] in ("request_reply", "stream"):
            extra.append(f"-> {r['reply_type']} ({r['timeout_ms']} ms)")
        print(f"{r['subject']:<{width}}  {r['pattern']:<13}  {r['request_type']}  {' '.join(extra)}".rstrip())
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("gen", help="regenerate generated/ from proto/ (runs buf generate)")
    p.set_defaults(func=cmd_gen)
    p = sub.add_parser("lint", help="buf lint the contracts")
    p.set_defaults(func=cmd_lint)
    p = sub.add_parser("subjects", help="list the subject registry")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.add_argument("--tenant", help="fill in this tenant id")
    p.set_defaults(func=cmd_subjects)
