"""The README's loop on a scratch copy of this checkout: add the field the
README shows, bump the contract's minor as `aisdk check` asks, regenerate,
check, and run the test modules that read the contracts. A user's edit of
the contracts must never break the suite for the wrong reason."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import NOT_COPIED, ROOT, aisdk, checkout_env

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


def add_field(proto: Path, field: str) -> None:
    """Put the field last in AgentMessage, where the README shows it."""
    text = proto.read_text()
    start = text.index("message AgentMessage {")
    end = text.index("\n}", start)
    proto.write_text(f"{text[:end]}\n  {field}{text[end:]}")


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
