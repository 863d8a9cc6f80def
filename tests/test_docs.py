"""Docs that run: every `sh` and `python` block of README.md, docs/ and
examples/ is executed, in document order, against a real server, so a page
that stops working fails here. docs/testing.md states the convention:

- a block fenced as `sh` or `python` runs; any other fence (`console` for a
  shell session shown with its output or one that cannot run here: cloud
  keys, `make test`, a benchmark of minutes, a check another block of the
  suite already runs; `text`, `proto`, `toml`, `yaml`, none) is only shown;
- every block runs in one scratch copy of the checkout (its `.venv` the
  real one, a git repository of one commit), with `aisdk` on PATH,
  `AISDK_NATS_URL` naming a server started once for all pages and
  `AISDK_DATABASE_URL` a fresh database on the embedded PostgreSQL;
- a shell block runs line by line and every command must exit 0; a line
  ending in `&` starts a service (`aisdk serve`, `aisdk server`,
  `aisdk tail`) that must say it is up and stays up until the page's last
  block has run, then stops on SIGTERM with exit code 0; `export NAME=VALUE`
  holds for the page's later lines;
- a python block is a complete program (imports, setup, `asyncio.run`)
  that imports only the public API.
"""

from __future__ import annotations

import ast
import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from aisdk.components.storage import temporary_database
from runtime import EmbeddedServer
from tests.support import NOT_COPIED, ROOT, checkout_env

PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "examples").rglob("*.md")])
RUN = {"sh", "python"}
FENCE = re.compile(r"^(\s*)```(\S*)\s*$")
# What a python block may import from the runtime: the facade and its public packages.
PUBLIC_RUNTIME = {"runtime", "runtime.hooks", "runtime.telemetry", "runtime.telemetry.names", "runtime.testing"}
BACKGROUND = re.compile(r"\s&\s*(#.*)?$")
EXPORT = re.compile(r"^export\s+\w+=")
UP = re.compile(r"^(nats://|ready |tailing )")
UP_WITHIN = 120.0
# Pages whose blocks are not yet complete programs, each with why: none
# today; a page enters only while it is rewritten, and leaves in the commit
# that makes it run.
BEING_REWRITTEN: dict[str, str] = {}
COMMAND_WITHIN = 600.0


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    lang: str
    code: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of a page that run, with the line each starts on."""
    found: list[Block] = []
    lines = page.read_text().splitlines()
    i = 0
    while i < len(lines):
        opened = FENCE.match(lines[i])
        if opened is None:
            i += 1
            continue
        indent, lang = opened.groups()
        start, i = i + 1, i + 1
        while i < len(lines) and lines[i].strip() != "```":
            i += 1
        body = "\n".join(ln[len(indent):] if ln.startswith(indent) else ln for ln in lines[start:i])
        if lang in RUN:
            found.append(Block(page, start + 1, lang, body + "\n"))
        i += 1
    return found


def commands(code: str) -> Iterator[tuple[int, str]]:
    """Shell commands with their offset in the block, continuations joined."""
    pending: list[str] = []
    first = 0
    for n, line in enumerate(code.splitlines()):
        if not pending:
            first = n
        if line.rstrip().endswith("\\"):
            pending.append(line.rstrip()[:-1])
            continue
        text = " ".join([*pending, line]).strip()
        pending = []
        if text and not text.startswith("#"):
            yield first, text


class Page:
    """Runs the blocks of one page and owns the services its lines start."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.cwd = cwd
        self.env = dict(env)
        self.services: list[tuple[str, subprocess.Popen[str], list[str]]] = []

    def run(self, block: Block) -> None:
        if block.lang == "python":
            self.python(block)
            return
        for offset, command in commands(block.code):
            where = f"{block.page.relative_to(ROOT)}:{block.line + offset}: {command}"
            if EXPORT.match(command):
                self.export(command)
            elif BACKGROUND.search(command):
                self.start(where, BACKGROUND.sub("", command))
            else:
                done = subprocess.run(["bash", "-c", command], cwd=self.cwd, env=self.env, capture_output=True,
                                      text=True, timeout=COMMAND_WITHIN)
                assert done.returncode == 0, f"{where}\nexit {done.returncode}\n{done.stdout[-3000:]}{done.stderr[-3000:]}"

    def python(self, block: Block) -> None:
        tree = ast.parse(block.code, block.where)
        private = sorted({
            node.module for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "runtime"
            and node.module not in PUBLIC_RUNTIME
        } | {
            alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
            for alias in node.names if alias.name.split(".")[0] == "runtime" and alias.name not in PUBLIC_RUNTIME
        })
        assert not private, f"{block.where}: imports {private}; use the public API ({sorted(PUBLIC_RUNTIME)})"
        # A file of its own outside the checkout, as a user's program or test
        # module would be: `pytest.main([__file__])` works in it.
        with tempfile.TemporaryDirectory() as tmp:
            program = Path(tmp) / f"{block.page.stem}_{block.line}.py"
            program.write_text(block.code)
            done = subprocess.run([sys.executable, str(program)], cwd=self.cwd, env=self.env, capture_output=True,
                                  text=True, timeout=COMMAND_WITHIN)
        assert done.returncode == 0, f"{block.where}\nexit {done.returncode}\n{done.stdout[-3000:]}{done.stderr[-3000:]}"

    def export(self, command: str) -> None:
        # On a line of its own: the command may end in a comment.
        shown = subprocess.run(["bash", "-ec", f"{command}\nenv -0"], cwd=self.cwd, env=self.env,
                               capture_output=True, text=True, check=True)
        self.env = dict(item.split("=", 1) for item in shown.stdout.split("\0") if "=" in item)

    def start(self, where: str, command: str) -> None:
        # exec: the signal reaches the service itself, not a shell around it.
        proc = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=self.cwd, env=self.env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        seen: list[str] = []
        up = threading.Event()

        def read(stream: object) -> None:
            for line in stream:  # type: ignore[attr-defined]
                seen.append(line)
                if UP.match(line):
                    up.set()

        for stream in (proc.stdout, proc.stderr):
            threading.Thread(target=read, args=(stream,), daemon=True).start()
        self.services.append((where, proc, seen))
        assert up.wait(UP_WITHIN), f"{where}: not up within {UP_WITHIN:g} s\n{''.join(seen)[-3000:]}"

    def stop(self) -> None:
        failures = []
        for where, proc, seen in reversed(self.services):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
            if code != 0:
                failures.append(f"{where}: exit {code} on SIGTERM\n{''.join(seen)[-2000:]}")
        assert not failures, "\n".join(failures)


@pytest.fixture(scope="module")
def docs_server() -> Iterator[EmbeddedServer]:
    with EmbeddedServer(name="aisdk-docs") as server:
        yield server


@pytest.fixture(scope="module")
def docs_database() -> Iterator[str]:
    """A fresh database on the embedded PostgreSQL for the pages' components:
    what they store never mixes with a deployment's or an earlier run's (a
    document ingested before would be skipped, not indexed)."""
    loop = asyncio.new_event_loop()
    database = temporary_database()
    try:
        yield loop.run_until_complete(database.__aenter__())
        loop.run_until_complete(database.__aexit__(None, None, None))
    finally:
        loop.close()


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the checkout: what the pages generate, release or write
    lands there, never in the working tree."""
    copy = Path(shutil.copytree(ROOT, tmp_path_factory.mktemp("docs") / "checkout", ignore=NOT_COPIED))
    venv(copy)
    repository(copy)
    return copy


def venv(copy: Path) -> None:
    """The copy's .venv is the environment the tests run in, entry by entry,
    with the Makefile's install stamps of its own: `make demo` there must
    never reinstall, which would point the editable install at the copy."""
    (copy / ".venv").mkdir()
    for entry in (ROOT / ".venv").iterdir():
        if not entry.name.startswith("."):
            (copy / ".venv" / entry.name).symlink_to(entry)
    checksum = subprocess.run("cksum < pyproject.toml", shell=True, cwd=copy, capture_output=True, text=True,
                              check=True).stdout.split()[0]
    for stamp in (".installed-", ".bench-installed-"):
        (copy / ".venv" / f"{stamp}{checksum}").touch()


def repository(copy: Path) -> None:
    """The copy as a fresh clone would be: one commit on main, which is also
    origin/main (what `aisdk check --against` and the PR gate compare with)."""
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=copy, capture_output=True, text=True, check=True)

    git("init", "-q", "-b", "main")
    git("config", "user.name", "Docs")
    git("config", "user.email", "docs@example.com")
    git("add", "-A")
    git("commit", "-q", "--no-verify", "-m", "the checkout")
    git("update-ref", "refs/remotes/origin/main", "main")


@pytest.mark.parametrize("page", [p for p in PAGES if blocks(p)], ids=lambda p: str(p.relative_to(ROOT)))
def test_every_block_of_the_page_runs(page: Path, scratch: Path, docs_server: EmbeddedServer,
                                      docs_database: str) -> None:
    name = str(page.relative_to(ROOT))
    if name in BEING_REWRITTEN:
        pytest.skip(f"{name}: {BEING_REWRITTEN[name]}")
    env = checkout_env(scratch)
    env["AISDK_NATS_URL"] = docs_server.url
    # The pages run `aisdk check` three times; its full property run is the suite's own.
    env["AISDK_CHECK_EXAMPLES"] = "3"
    env["AISDK_DATABASE_URL"] = docs_database
    env["PATH"] = os.pathsep.join([str(scratch / ".venv" / "bin"), env["PATH"]])
    runner = Page(scratch, env)
    try:
        for block in blocks(page):
            runner.run(block)
    finally:
        runner.stop()


# -- the convention itself ------------------------------------------------------


def test_blocks_are_found_with_their_lines_and_only_runnable_fences(tmp_path: Path) -> None:
    page = tmp_path / "p.md"
    page.write_text("x\n```sh\necho a \\\n  b\n# note\n```\n```console\n$ no\n```\n1. step\n\n   ```python\n"
                    "   print(1)\n   ```\n```\nplain\n```\n")
    found = blocks(page)
    assert [(b.line, b.lang) for b in found] == [(3, "sh"), (13, "python")]
    assert list(commands(found[0].code)) == [(0, "echo a    b")]
    assert found[1].code == "print(1)\n"


def test_a_failing_command_names_its_page_and_line(tmp_path: Path) -> None:
    runner = Page(tmp_path, dict(os.environ))
    with pytest.raises(AssertionError, match=r"p\.md:3: false"):
        runner.run(Block(ROOT / "p.md", 2, "sh", "true\nfalse   # fails\n"))


def test_a_private_runtime_import_is_refused(tmp_path: Path) -> None:
    runner = Page(tmp_path, dict(os.environ))
    with pytest.raises(AssertionError, match=r"imports \['runtime.bus'\]"):
        runner.python(Block(ROOT / "p.md", 1, "python", "from runtime.bus import Bus\n"))
