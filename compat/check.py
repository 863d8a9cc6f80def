"""`aisdk check`: every compatibility check, in the order a reviewer wants
the answers (does it compile and lint, does it break a released contract or
a subject, is generated/ current, do old and new code really understand
each other), printed as each finishes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import TextIO

from codegen.toolchain import ToolchainError, tool_env
from compat import breaking, bumps, drift, images, rules, subjects
from compat.images import Image
from compat.report import CompatError, Finding

STEPS = ("lint", "breaking", "registry", "rules", "versions", "drift", "properties")
EXAMPLES = 30  # per property; the pytest suite runs the same properties


# A check of a layer above compat, run against each target like the
# registry step: (baseline, today) -> findings. The CLI adds the AsyncAPI one.
Step = Callable[[Image, Image], list[Finding]]


def run_check(
    root: Path,
    against: str | None = None,
    skip: Collection[str] = (),
    examples: int = EXAMPLES,
    out: TextIO = sys.stdout,
    more: Mapping[str, Step] | None = None,
) -> list[Finding]:
    """Run the checks not skipped against `against` (a git ref or an image
    file) or else every baseline; print each section, return every finding.
    `more` names further steps run against each target after the rules."""
    found: list[Finding] = []

    def section(title: str, findings: list[Finding], note: str = "") -> None:
        errs = sum(f.severity == "error" for f in findings)
        warns = sum(f.severity == "warning" for f in findings)
        counts = [f"{n} {what}{'s' if n > 1 else ''}" for n, what in ((errs, "error"), (warns, "warning")) if n]
        status = ", ".join(counts) if counts else "ok"
        print(f"{title}: {status}{f' ({note})' if note else ''}", file=out)
        for f in findings:
            print(f"  {f.line()}", file=out)
        out.flush()
        found.extend(findings)

    with tempfile.TemporaryDirectory(prefix="aisdk-check-") as tmp:
        work = Path(tmp)
        releases = images.baselines(root)
        targets = releases if against is None else [_against(root, against, work)]
        if "lint" not in skip:
            section("lint", breaking.lint(root))
        if {"breaking", "registry", "rules", "versions", "properties", *(more or {})} - set(skip):
            try:
                now = images.current(root, work)
            except ToolchainError as e:
                if not any(f.rule == "COMPILE" for f in found):  # lint said it already
                    detail = " ".join(str(e).splitlines()[1:]) or str(e)
                    section("build", [Finding("build", "", f"the contracts do not compile: {detail}", "COMPILE")])
                return found
            if not targets:
                none = "no released baseline to compare against yet (`aisdk release VERSION` cuts one)"
                section("baselines", [Finding("baselines", str(images.BASELINE_DIR), none, severity="warning")])
            for target in targets:
                if "breaking" not in skip:
                    assert target.path is not None
                    section(f"breaking against {target.label}", breaking.breaking(root, str(target.path), target, now))
                if "registry" not in skip:
                    section(f"registry against {target.label}", subjects.check(target, now))
                if "rules" not in skip:
                    section(f"rules against {target.label}", rules.check(target, now))
                for name, step in (more or {}).items():
                    if name not in skip:
                        section(f"{name} against {target.label}", step(target, now))
            if "versions" not in skip and releases:
                section(f"versions against {releases[-1].label}", bumps.check(releases[-1], now))
        if "drift" not in skip:
            problems = drift.drift(root)
            section("drift", [_drift_finding(p) for p in problems], "generated/ matches proto/" if not problems else "")
        if "properties" not in skip:
            findings, summary = _properties(root, targets, examples)
            title = "properties" + (f" against {', '.join(t.label for t in targets)}" if targets else "")
            note = f"{summary['properties']} properties, {summary['examples']} examples, {summary['seconds']} s"
            section(title, findings, note)
    return found


def _against(root: Path, against: str, work: Path) -> Image:
    """A released image file, or the project tree at a git ref."""
    for candidate in (Path(against), root / against):
        if candidate.suffix == ".binpb" and candidate.is_file():
            return Image.load(candidate)
    return images.at_ref(root, against, work)


def _drift_finding(problem: str) -> Finding:
    path, _, what = problem.partition(": ")
    return Finding("drift", path, f"{what}: run `aisdk gen` and commit generated/", "GENERATED_CURRENT")


def _properties(root: Path, targets: list[Image], examples: int) -> tuple[list[Finding], dict[str, object]]:
    """The property suite in a child interpreter whose import path starts
    with this project's generated/, so it tests what this tree generates
    rather than whatever copy of the contracts is installed."""
    env = tool_env()
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root / "generated"), env.get("PYTHONPATH", "")) if p)
    labelled = [f"{t.label}={t.path}" for t in targets]
    cmd = [sys.executable, "-m", "compat.properties", "--examples", str(examples), *labelled]
    result = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    findings: list[Finding] = []
    summary: dict[str, object] | None = None
    for line in result.stdout.splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "summary" in row:
            summary = row["summary"]
        else:
            findings.append(Finding("properties", row["where"], row["text"], row["rule"]))
    if summary is None:
        lines = (result.stderr or result.stdout).strip().splitlines()
        raise CompatError(f"the property suite did not run: {lines[-1] if lines else f'exit {result.returncode}'}")
    return findings, summary
