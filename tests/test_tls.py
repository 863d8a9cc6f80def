"""Mutual TLS with the development CA `aisdk auth init --tls` makes: the
Bus and the CLI connect with the CA and a client certificate; without
either they are refused with one clear line."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ai.gateway.v1 import gateway_bus
from aisdk.cli.main import main as aisdk
from runtime import Bus, BusSettings, ConnectionFailed
from runtime.server import EmbeddedServer, free_port
from runtime.settings import credentials, tls_context
from tests.support import Gateway, llm_request


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EmbeddedServer, Path]]:
    directory = tmp_path_factory.mktemp("tls")
    assert aisdk(["auth", "init", "--tenants", "acme", "--dir", str(directory), "--port", str(free_port()),
                  "--tls"]) == 0
    with EmbeddedServer(config=str(directory / "nats-server.conf")) as server:
        yield server, directory


def settings(directory: Path, who: str, *, ca: bool = True, cert: bool = True) -> BusSettings:
    context = tls_context(str(directory / "ca.pem") if ca else None,
                          str(directory / f"{who}-cert.pem") if cert else None,
                          str(directory / f"{who}-key.pem") if cert else None)
    return BusSettings(name=who, tls=context, provision_streams=who == "service", max_reconnect_attempts=1, reconnect_time_wait=0.1,
                       **credentials(str(directory / f"{who}.nk")))


async def test_clients_with_the_ca_and_a_certificate_are_served(deployment: tuple[EmbeddedServer, Path]) -> None:
    server, directory = deployment
    async with Bus(server.url, settings(directory, "service")) as svc, \
            Bus(server.url, settings(directory, "acme")) as acme:
        await svc.serve(Gateway("tls"))
        reply = await gateway_bus.GatewayServiceClient(acme, "acme").requests(llm_request("secure", "t1"))
        assert reply.response == "tls: secure"
        assert acme.nc.connected_url is not None


@pytest.mark.parametrize(("ca", "cert", "reason"), [
    (False, True, "certificate is not trusted (unable to get local issuer certificate)"),
    (True, False, "requires a client certificate (mutual TLS)"),
])
async def test_a_client_without_the_ca_or_a_certificate_is_refused(
    deployment: tuple[EmbeddedServer, Path], ca: bool, cert: bool, reason: str
) -> None:
    server, directory = deployment
    with pytest.raises(ConnectionFailed) as refused:
        await Bus(server.url, settings(directory, "acme", ca=ca, cert=cert)).connect()
    message = str(refused.value)
    assert reason in message and "\n" not in message, message


def test_the_cli_takes_the_certificates_and_refuses_in_one_line(
    deployment: tuple[EmbeddedServer, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    server, directory = deployment
    base = ["publish", "agent.status", "--tenant", "acme", "--data", '{"agent_id": "a1", "state": "AGENT_STATE_IDLE"}',
            "--nats-url", server.url, "--creds", str(directory / "acme.nk")]
    tls = ["--tls-ca", str(directory / "ca.pem"), "--tls-cert", str(directory / "acme-cert.pem"),
           "--tls-key", str(directory / "acme-key.pem")]
    assert aisdk([*base, *tls]) == 0, capsys.readouterr().err
    assert '"published": "ai.agent.status.acme"' in capsys.readouterr().out
    assert aisdk(base) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("aisdk publish: ") and "\n" not in err, err
    assert aisdk([*base, "--tls-ca", str(directory / "missing.pem")]) == 1
    err = capsys.readouterr().err.strip()
    assert "missing.pem" in err and "cannot be read" in err and "\n" not in err, err
