"""The pytest plugin (runtime.testing) in a user's project as pytest-asyncio
ships it, in strict mode: a tiny project in a tmp dir, run by its own pytest."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support import checkout_env

CONFTEST = 'pytest_plugins = ["runtime.testing"]\n'

USER_TESTS = '''
import pytest

from ai.gateway.v1 import gateway_bus, gateway_pb2
from runtime import Bus, Context


class Echo(gateway_bus.GatewayServiceHandler):
    async def requests(self, request: gateway_pb2.LlmRequest, ctx: Context) -> gateway_pb2.LlmResponse:
        return gateway_pb2.LlmResponse(request_id=request.request_id, response=request.prompt, model=request.model)


@pytest.mark.asyncio
async def test_bus_is_connected_and_serves(bus: Bus) -> None:
    await bus.serve(Echo())
    request = gateway_pb2.LlmRequest(request_id="u1", prompt="from a user project", model="m")
    reply = await gateway_bus.GatewayServiceClient(bus, "user").requests(request)
    assert reply.response == "from a user project"


@pytest.mark.asyncio
async def test_each_test_gets_its_own_bus(bus: Bus) -> None:
    assert bus.nc.is_connected
'''


def run_user_project(tmp_path: Path, ini: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "pytest.ini").write_text(ini)
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_user.py").write_text(USER_TESTS)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-c", str(tmp_path / "pytest.ini"), str(tmp_path)],
        cwd=tmp_path, env=checkout_env(), capture_output=True, text=True, timeout=300,
    )


def test_bus_fixture_in_a_strict_mode_project(tmp_path: Path) -> None:
    out = run_user_project(tmp_path, "[pytest]\nasyncio_mode = strict\n")
    assert "mode=Mode.STRICT" in out.stdout, out.stdout
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2 passed" in out.stdout, out.stdout


def test_bus_fixture_in_a_project_without_asyncio_settings(tmp_path: Path) -> None:
    out = run_user_project(tmp_path, "[pytest]\n")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2 passed" in out.stdout, out.stdout
