"""The PR gate (`python -m compat.gate`, what the workflow and the
pre-commit hook run) on a scratch git repository: a clone whose origin/main
holds the released contracts, with an additive commit that passes and a
breaking commit that fails, each reported in the job summary."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from codegen import toolchain
from tests.support import ROOT, checkout_env, released_project

AGENT = "proto/ai/agent/v1/agent.proto"
SESSION = "  string session_id = 7 [(ai.options.v1.rules) = {max_len: 128}];\n"
MESSAGE_ID = "string message_id = 1 [(ai.options.v1.rules) = {required: true, max_len: 128}];"
MINOR = "option (ai.options.v1.contract) = {minor: 0};"


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=ci", "-c", "user.email=ci@example.com", *args],
                   cwd=cwd, check=True, capture_output=True)


def commit(repo: Path, message: str, *edits: tuple[str, str]) -> None:
    file = repo / AGENT
    text = file.read_text()
    for old, new in edits:
        assert old in text, f"{AGENT} no longer contains the text this test edits"
        text = text.replace(old, new, 1)
    file.write_text(text)
    toolchain.generate(root=repo)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)


def gate(repo: Path, summary: Path) -> subprocess.CompletedProcess[str]:
    env = checkout_env(ROOT)
    env["GITHUB_STEP_SUMMARY"] = str(summary)
    return subprocess.run([sys.executable, "-m", "compat.gate", "--examples", "10"], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    upstream = released_project(tmp_path_factory.mktemp("upstream"))
    (upstream / ".gitignore").write_text("__pycache__/\n")
    git(upstream, "init", "-q", "-b", "main")
    git(upstream, "add", "-A")
    git(upstream, "commit", "-qm", "Contracts v1.0.0")
    work = tmp_path_factory.mktemp("work") / "repo"
    git(upstream.parent, "clone", "-q", str(upstream), str(work))
    return work


def test_additive_commit_passes_and_breaking_commit_fails(clone: Path, tmp_path: Path) -> None:
    commit(clone, "Add reply_to", (SESSION, SESSION + "  string reply_to = 8;\n"),
           (MINOR, MINOR.replace("0", "1")))
    passed = tmp_path / "passed.md"
    result = gate(clone, passed)
    assert result.returncode == 0, result.stdout + result.stderr
    for step in ("lint: ok", "breaking against origin/main: ok", "rules against origin/main: ok", "drift: ok",
                 "aisdk check: ok"):
        assert step in result.stdout
    assert "properties against origin/main: ok" in result.stdout
    assert passed.read_text().startswith("## Contract check against `origin/main`: passed")

    commit(clone, "Shorter message ids", (MESSAGE_ID, MESSAGE_ID.replace("128", "16")))
    failed = tmp_path / "failed.md"
    result = gate(clone, failed)
    assert result.returncode == 1, result.stdout + result.stderr
    report = failed.read_text()
    assert report.startswith("## Contract check against `origin/main`: failed")
    assert 'ai.agent.v1.AgentMessage field "message_id": max_len tightened from 128 to 16' in report
    assert "rules of origin/main accepted today fails" in report
    assert "aisdk check: " in report and "errors: see above" in report


def test_workflow_and_hooks_run_the_gate() -> None:
    workflow = yaml.safe_load((ROOT / ".github/workflows/contracts.yml").read_text())
    steps = workflow["jobs"]["check"]["steps"]
    assert steps[0]["with"]["fetch-depth"] == 0
    assert any(s.get("run", "").endswith("-m compat.gate") for s in steps)
    for path in (".pre-commit-hooks.yaml", ".pre-commit-config.yaml"):
        hooks = yaml.safe_load((ROOT / path).read_text())
        hooks = hooks if isinstance(hooks, list) else [h for r in hooks["repos"] for h in r["hooks"]]
        assert [h["entry"].endswith("python -m compat.gate") for h in hooks] == [True], path
