"""`aisdk gen | lint | subjects`: the contracts and their registry."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from aisdk.cli import extras, registry
from aisdk.cli.errors import CommandError

CATALOGUE = Path("docs") / "subjects.md"

# protoc's Python generator and the betterproto flavour; a missing buf is
# reported by codegen.toolchain, which looks for it.
_GEN_MODULES = ("grpc_tools", "betterproto")


def cmd_gen(args: argparse.Namespace) -> int:
    extras.require("aisdk gen", extras.DEV, _GEN_MODULES)
    from codegen import toolchain

    root = toolchain.project_root()
    out = toolchain.generate(root)
    print(f"generated {out}")
    if (root / "docs").is_dir():
        (root / CATALOGUE).write_text(catalogue_of(root))
        print(f"generated {root / CATALOGUE}")
    return 0


def catalogue_of(root: Path) -> str:
    """docs/subjects.md for the registry in root's generated/, rendered by a
    child interpreter that imports that registry and no other."""
    from codegen.toolchain import ToolchainError, tool_env

    env = tool_env()
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root / "generated"), str(root), env.get("PYTHONPATH")) if p)
    result = subprocess.run([sys.executable, "-m", "aisdk.cli.asyncapi"], cwd=root, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines()
        raise ToolchainError(f"the subject catalogue was not rendered: {lines[-1] if lines else result.returncode}")
    return result.stdout


def cmd_asyncapi(args: argparse.Namespace) -> int:
    from importlib.metadata import PackageNotFoundError, version

    from aisdk.cli.asyncapi import document

    try:
        release = version("aisdk-contracts")
    except PackageNotFoundError:
        release = "0.0.0"
    text = json.dumps(document(registry.load().SUBJECTS, release), indent=2) + "\n"
    if args.output in (None, "-"):
        sys.stdout.write(text)
        return 0
    out = Path(args.output)
    if not out.parent.is_dir():
        raise CommandError(f"cannot write {out}: directory {out.parent} does not exist")
    out.write_text(text)
    print(f"wrote {out} (AsyncAPI 3.0, {len(registry.load().SUBJECTS)} subjects)")
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
    p = sub.add_parser("gen", help="regenerate generated/ and docs/subjects.md from proto/ (runs buf generate)")
    p.set_defaults(func=cmd_gen)
    p = sub.add_parser("asyncapi", help="write the subject registry as an AsyncAPI 3.0 document (JSON)")
    p.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    p.set_defaults(func=cmd_asyncapi)
    p = sub.add_parser("lint", help="buf lint the contracts")
    p.set_defaults(func=cmd_lint)
    p = sub.add_parser("subjects", help="list the subject registry")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.add_argument("--tenant", help="fill in this tenant id")
    p.set_defaults(func=cmd_subjects)
