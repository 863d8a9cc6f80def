"""buf lint and buf breaking, their findings rewritten to name things the
way the rest of the platform does: full proto names, field numbers and the
file under proto/.

buf says `Field "4" with name "content" on message "AgentMessage" changed
type from "string" to "int64".`; we say
`ai.agent.v1.AgentMessage field 4 "content": type changed from string to int64`.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from codegen.toolchain import ToolchainError, tool_env
from compat.images import PROTO_DIR, Image
from compat.report import Finding

_FIELD = re.compile(r'(?:Previously present field|Field) "(\d+)"(?: with name "([^"]*)")? on message "([^"]+)"')
_ENUM_VALUE = re.compile(
    r'(?:Previously present enum value|Enum value) "(-?\d+)"(?: with name "([^"]*)")? on enum "([^"]+)"'
)
_RPC = re.compile(r'(?:Previously present RPC|RPC) "([^"]+)" on service "([^"]+)"')
_TYPE = re.compile(r'(?:Previously present (?:message|enum|service)|Message|Enum|Service) "([^"]+)"')
_ON = re.compile(r'on (message|enum|service) "([^"]+)"')
_CHANGED = re.compile(r"^changed ([a-z][a-z ]*?) from ")
_QUOTED = re.compile(r'"([^"]*)"')
_DELETED_FIELD = ("FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED", "FIELD_NO_DELETE_UNLESS_NAME_RESERVED")


def run_buf(root: Path, *args: str) -> list[dict[str, Any]]:
    """buf's JSON findings; a failure that is not a finding is raised."""
    env = tool_env()
    exe = shutil.which("buf", path=env["PATH"])
    if exe is None:
        raise ToolchainError("buf is not installed: pip install buf-bin (part of the dev extra)")
    result = subprocess.run(
        [exe, *args, "--error-format=json"], cwd=root, env=env, capture_output=True, text=True
    )
    rows: list[dict[str, Any]] = []
    for line in result.stdout.splitlines():
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                rows = []
                break
    if result.returncode != 0 and not rows:
        detail = (result.stderr or result.stdout).strip()
        raise ToolchainError(f"buf {args[0]} failed:\n{detail}" if detail else f"buf {args[0]} failed")
    return rows


def lint(root: Path) -> list[Finding]:
    return [
        Finding("lint", f"{r['path']}:{r.get('start_line', 0)}", r["message"], r.get("type", ""))
        for r in run_buf(root, "lint")
    ]


def breaking(root: Path, against: str, old: Image, new: Image) -> list[Finding]:
    """buf breaking of the working tree against a buf input (an image file
    or a git ref); `old` and `new` resolve package names."""
    packages = {f.name: f.package for f in (*old.files.file, *new.files.file)}
    found = [_rewrite(r, packages, new) for r in run_buf(root, "breaking", "--against", against)]
    return _merge_deleted_fields(found)


def _rewrite(row: dict[str, Any], packages: dict[str, str], new: Image) -> Finding:
    path = str(row.get("path", ""))
    line = int(row.get("start_line", 0))
    rule = str(row.get("type", ""))
    text = str(row["message"]).split(" See https://", 1)[0].rstrip(".")
    package = packages.get(path.removeprefix(f"{PROTO_DIR}/"), "")

    def full(name: str) -> str:
        return f"{package}.{name}" if package else name

    subject, rest = _subject(text, full)
    if rule == _DELETED_FIELD[0]:
        rest = _renumbered(subject, new) or rest
    detail = _QUOTED.sub(lambda m: m.group(1) or '""', _CHANGED.sub(r"\1 changed from ", rest))
    detail = detail.replace("was deleted", "deleted")
    # Line 1 is buf's "somewhere in this file" (a deleted message has no line).
    where = f"{path}:{line}" if path and line > 1 else path
    return Finding("breaking", where, f"{subject}: {detail}" if subject else detail, rule)


def _subject(text: str, full: Callable[[str], str]) -> tuple[str, str]:
    """(the thing the finding is about, what happened to it)."""
    renderers: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str]], ...] = (
        (_FIELD, lambda m: f"{full(m.group(3))} field {m.group(1)}{_name(m.group(2))}"),
        (_ENUM_VALUE, lambda m: f"{full(m.group(3))} value {m.group(1)}{_name(m.group(2))}"),
        (_RPC, lambda m: f"{full(m.group(2))}.{m.group(1)}"),
        (_TYPE, lambda m: full(m.group(1))),
    )
    for pattern, render in renderers:
        m = pattern.match(text)
        if m is not None:
            return render(m), text[m.end() :].strip()
    return "", _ON.sub(lambda m: f'on {m.group(1)} "{full(m.group(2))}"', text)


def _name(name: str | None) -> str:
    return f' "{name}"' if name else ""


def _renumbered(subject: str, new: Image) -> str | None:
    """A deleted field whose name lives on under another number was
    renumbered: say so, since that is what the author did."""
    m = re.fullmatch(r'(\S+) field (\d+) "([^"]+)"', subject)
    if m is None:
        return None
    try:
        message = new.pool.FindMessageTypeByName(m.group(1))
    except KeyError:
        return None
    moved = message.fields_by_name.get(m.group(3))
    if moved is None or moved.number == int(m.group(2)):
        return None
    return f"renumbered to {moved.number}: old and new code read each other's value as an unknown field"


def _merge_deleted_fields(found: list[Finding]) -> list[Finding]:
    """buf reports an unreserved deletion once for the number and once for
    the name; one line per field is easier to act on."""
    out: list[Finding] = []
    first: dict[tuple[str, str], int] = {}
    for f in found:
        if f.rule not in _DELETED_FIELD:
            out.append(f)
            continue
        subject = f.text.partition(": ")[0]
        key = (f.where, subject)
        if key not in first:
            first[key] = len(out)
            out.append(f)
            continue
        kept = out[first[key]]
        if "renumbered" not in kept.text:
            text = f.text if "renumbered" in f.text else f"{subject}: deleted without reserving its number or its name"
            out[first[key]] = Finding(f.check, f.where, text, _DELETED_FIELD[0])
    return out
