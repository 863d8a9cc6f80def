"""The README's loop on a scratch copy of this checkout: add the field the
README shows, bump the contract's minor as `aisdk check` asks, regenerate,
check, and run the test modules that read the contracts. A user's edit of
the contracts must never break the suite for the wrong reason: the field
takes the next free number when the README's is taken."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import NOT_COPIED, ROOT, aisdk, buf_exe, checkout_env

AGENT = Path("proto/ai/agent/v1/agent.proto")
MINOR = re.compile(r"option \(ai\.options\.v1\.contract\) = \{minor: (\d+)\};")
# The modules that read proto/, generated/ or the schema versions.
AFFECTED = [
    "tests/test_codegen.py", "tests/test_compat_check.py", "tests/test_compat_properties.py",
    "tests/test_drift.py", "tests/test_registry.py", "tests/test_validators.py", "tests/test_versioning.py",
    "tests/test_runtime_safety.py",
]


def readme_field() -> str:
    """The field line step 1 of the README adds, as the README writes it."""
    readme = (ROOT / "README.md").read_text()
    [line] = [ln for ln in readme.splitlines() if ln.rstrip().endswith("// new")]
    return line.split("//")[0].strip()


_NUMBERED = re.compile(r"=\s*(\d+)\s*[\[;]")
_RESERVED = re.compile(r"^\s*reserved\s+([^;]*);", re.MULTILINE)


def _agent_message(text: str) -> tuple[int, int]:
    start = text.index("message AgentMessage {")
    return start, text.index("\n}", start)


def taken_numbers(text: str) -> set[int]:
    """The field numbers AgentMessage uses or reserves."""
    start, end = _agent_message(text)
    body = text[start:end]
    taken = {int(n) for n in _NUMBERED.findall(body)}
    for spec in _RESERVED.findall(body):
        for part in spec.split(","):
            low, _, high = part.strip().partition(" to ")
            if low.isdigit():
                taken.update(range(int(low), int(high if high.isdigit() else low) + 1))
    return taken


def add_field(proto: Path, field: str) -> str:
    """Put the field last in AgentMessage, where the README shows it, with
    the README's number if it is free and the next free one above it otherwise (a
    user's own edit may have taken it); the field as added."""
    text = proto.read_text()
    taken = taken_numbers(text)
    number = int(_NUMBERED.search(field).group(1))  # type: ignore[union-attr]
    if number in taken:
        free = number
        while free in taken:
            free += 1
        field = _NUMBERED.sub(lambda m: m.group(0).replace(m.group(1), str(free)), field, count=1)
    _, end = _agent_message(text)
    proto.write_text(f"{text[:end]}\n  {field}{text[end:]}")
    return field


def bump_minor(proto: Path) -> int:
    text = proto.read_text()
    match = MINOR.search(text)
    assert match is not None, f"{AGENT} declares no (ai.options.v1.contract).minor"
    minor = int(match.group(1)) + 1
    proto.write_text(text[: match.start(1)] + str(minor) + text[match.end(1):])
    return minor


def test_readme_edit_then_gen_check_and_the_affected_tests(tmp_path: Path) -> None:
    field = readme_field()
    name = field.split()[1]
    if re.search(rf"\b{name}\b", (ROOT / AGENT).read_text()):
        pytest.skip(f"{AGENT} already has the README's field {name!r}: the suite itself runs on that edit")
    copy = Path(shutil.copytree(ROOT, tmp_path / "checkout", ignore=NOT_COPIED))
    add_field(copy / AGENT, field)
    bump_minor(copy / AGENT)

    gen = aisdk(copy, "gen", root=copy)
    assert gen.returncode == 0, gen.stdout + gen.stderr
    check = aisdk(copy, "check", root=copy, timeout=600)
    assert check.returncode == 0, check.stdout + check.stderr
    # Warnings the released contracts already carry are not the edit's; the
    # edit (field added, minor bumped as asked) must bring none of its own.
    edited = [ln for ln in check.stdout.splitlines() if "warning:" in ln and str(AGENT) in ln]
    assert edited == [], check.stdout

    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-x", *AFFECTED],
        cwd=copy, env=checkout_env(copy), capture_output=True, text=True, timeout=1800,
    )
    assert tests.returncode == 0, tests.stdout[-6000:] + tests.stderr[-2000:]


def test_the_readmes_field_takes_the_next_free_number_after_a_users_own(tmp_path: Path) -> None:
    # The user's working tree already has a field 9 (the README's number)
    # and a bumped minor: the README's edit on top still compiles.
    copy = tmp_path / "checkout"
    copy.mkdir()
    for name in ("buf.yaml", "proto"):
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy2)(ROOT / name, copy / name)
    proto = copy / AGENT
    if re.search(r"\blocale\b", proto.read_text()):
        pytest.skip(f"{AGENT} already has the README's field")
    add_field(proto, 'string user_note = 9 [(ai.options.v1.rules) = {max_len: 64}];')
    text = proto.read_text()
    proto.write_text(text.replace("  string in_reply_to = 8", "  reserved 11;\n  string in_reply_to = 8"))
    bump_minor(proto)
    added = add_field(proto, readme_field())
    assert " = 10 " in added and "locale" in added
    assert taken_numbers(proto.read_text()) == set(range(1, 12))
    built = subprocess.run([buf_exe(), "build", "-o", str(tmp_path / "image.binpb")], cwd=copy,
                           capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stderr
