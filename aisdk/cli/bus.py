"""`aisdk server | serve | request | publish | tail`: the bus from a shell.

Payloads are JSON in the proto JSON mapping of the operation's type; replies
and tailed messages are printed the same way, one JSON document per line on
stdout. Status lines go to stderr, so stdout stays machine-readable (and
holds nothing else when `aisdk serve` traces to the console).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

from aisdk.cli import extras, registry
from aisdk.cli.errors import CommandError
from runtime.contract import Pattern, ServiceHandler, SubjectSpec, check_tenant

log = logging.getLogger("aisdk.cli")

URL_ENV = ("AISDK_NATS_URL", "NATS_URL")
DEFAULT_URL = "nats://127.0.0.1:4222"


def default_url() -> str:
    return next((os.environ[v] for v in URL_ENV if os.environ.get(v)), DEFAULT_URL)


def _servers(url: str) -> list[str]:
    return [u.strip() for u in url.split(",") if u.strip()]


def status(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _payload(spec: SubjectSpec[Any, Any], data: str) -> Message:
    message: Message = spec.request_type()
    try:
        json_format.Parse(data, message)
    except json_format.ParseError as e:
        reason = str(e).splitlines()[0]
        raise CommandError(f"--data is not a valid {spec.request_name} in JSON: {reason}") from None
    registry.fill_generated_ids(message)
    return message


def _typed(args: argparse.Namespace, patterns: tuple[Pattern, ...]) -> tuple[SubjectSpec[Any, Any], Message]:
    """Operation, tenant and payload checked before anything connects."""
    spec = registry.spec(args.operation, patterns)
    check_tenant(args.tenant)
    return spec, _payload(spec, args.data)


def _json(message: Message) -> str:
    return json_format.MessageToJson(message, indent=None, preserving_proto_field_name=True)


def connection_args(p: argparse.ArgumentParser) -> None:
    """The options of every command that connects: where, and as whom."""
    p.add_argument("--nats-url", default=default_url(),
                   help=f"server URL(s), comma-separated (default ${URL_ENV[0]} or {DEFAULT_URL})")
    p.add_argument("--creds", metavar="FILE", default=os.environ.get("AISDK_NATS_CREDS"),
                   help="credentials: an nkey seed from `aisdk auth init` or a .creds file "
                   "(default $AISDK_NATS_CREDS)")
    for name, what in (("ca", "the CA of the servers' certificates"),
                       ("cert", "this client's certificate (mutual TLS)"), ("key", "the key of --tls-cert")):
        env = f"AISDK_TLS_{name.upper()}"
        p.add_argument(f"--tls-{name}", metavar="FILE", default=os.environ.get(env), help=f"{what} (default ${env})")


def bus_settings(args: argparse.Namespace, name: str, **options: Any) -> Any:
    """BusSettings from the connection options (connection_args) and `options`.
    A tenant's connection (credentials, not `serve`) leaves the contract's
    streams to the services' account that owns them."""
    from runtime.settings import BusSettings, credentials, tls_context

    # getattr: a command registered without connection_args connects as before.
    creds, ca, cert, key = (getattr(args, a, None) for a in ("creds", "tls_ca", "tls_cert", "tls_key"))
    files: dict[str, Any] = {}
    if creds:
        files.update(credentials(creds))
        files["provision_streams"] = args.command == "serve"
    if ca or cert or key:
        files["tls"] = tls_context(ca, cert, key)
    return BusSettings(name=name, **files, **options)


async def _connected(args: argparse.Namespace, telemetry: Any = None) -> Any:
    from runtime.bus import Bus

    # A shell command fails fast on an unreachable server instead of retrying.
    settings = bus_settings(args, f"aisdk-{args.command}", max_reconnect_attempts=2, reconnect_time_wait=0.2)
    bus = Bus(_servers(args.nats_url), settings, telemetry=telemetry)
    return await bus.connect()


def service_name(components: list[str]) -> str:
    """OTEL_SERVICE_NAME when set, else the component (or components) served."""
    return os.environ.get("OTEL_SERVICE_NAME") or "-".join(components)


def _telemetry_from_env(name: str, metrics_port: int | None = None, metrics_host: str | None = None) -> Any:
    """Telemetry for `aisdk serve` when the standard OTEL_* variables ask for
    it, or a Prometheus endpoint does (--metrics-port)."""
    if metrics_port is None and not any(k.startswith("OTEL_") for k in os.environ):
        return None
    from runtime import telemetry

    if metrics_port is None:
        return telemetry.setup(name)
    exporters = os.environ.get("OTEL_METRICS_EXPORTER", "").strip()
    names = {n.strip() for n in exporters.split(",") if n.strip() and n.strip() != "none"} | {"prometheus"}
    return telemetry.setup(name, metrics_exporter=",".join(sorted(names)), prometheus_port=metrics_port,
                           prometheus_host=metrics_host)


def _run(coro: Any) -> int:
    result: int = asyncio.run(coro)
    return result


def _component(name: str) -> ServiceHandler:
    """The component's handler; a dependency of a missing extra is named as such."""
    from aisdk.components import COMPONENTS

    factory = COMPONENTS.get(name)
    if factory is None:
        raise CommandError(f"unknown component {name}: choose from {', '.join(sorted(COMPONENTS))}")
    try:
        return factory()
    except ModuleNotFoundError as e:
        extra, how = extras.COMPONENTS
        raise CommandError(
            f"component {name} needs the {extra} extra ({e.name} not installed): {how}"
        ) from None


# -- commands -----------------------------------------------------------------


def store_dir(args: argparse.Namespace) -> str | None:
    """Where `aisdk server` keeps JetStream: --store-dir, else the project's
    state (a restart keeps every stream); a temporary one only when asked."""
    from runtime.state import jetstream_dir

    if args.ephemeral and args.store:
        raise CommandError("--ephemeral and --store-dir contradict each other: a temporary store or that one")
    if args.ephemeral:
        return None
    return args.store or str(jetstream_dir())


def cmd_server(args: argparse.Namespace) -> int:
    from runtime.server import EmbeddedServer, contract_max_payload

    if args.config:
        if args.ephemeral or args.store:
            raise CommandError("a configuration file sets the JetStream store: drop --ephemeral and --store-dir")
        server = EmbeddedServer(config=args.config)
    else:
        store = None if args.no_jetstream else store_dir(args)
        server = EmbeddedServer(port=args.port, jetstream=not args.no_jetstream, store_dir=store,
                                max_payload=contract_max_payload(registry.load().BY_KEY.values()))
        if not args.no_jetstream:
            log.info("JetStream store: %s", store or "a temporary directory, deleted at exit (--ephemeral)")
    server.start()
    print(server.url, flush=True)
    stop = {"now": False}

    def on_signal(signum: int, frame: Any) -> None:
        # Only signal the child here: waiting on it belongs to the main flow.
        stop["now"] = True
        server.terminate()

    def on_reload(signum: int, frame: Any) -> None:
        server.reload()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if args.config:
        # `kill -HUP` on this process reaches the server: a regenerated
        # configuration (aisdk auth init) takes effect without a restart.
        signal.signal(signal.SIGHUP, on_reload)
    try:
        code = server.wait()
    finally:
        server.stop()
    return 0 if stop["now"] else code


async def _serve(args: argparse.Namespace) -> int:
    handlers = {name: _component(name) for name in args.components}
    tel = _telemetry_from_env(service_name(args.components), args.metrics_port, args.metrics_host)
    if args.metrics_port is not None:
        status(f"metrics on http://{args.metrics_host or 'localhost'}:{args.metrics_port}/metrics (Prometheus)")
    bus = await _connected(args, tel)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    try:
        for name, handler in handlers.items():
            service = await bus.serve(handler, tenants=args.tenant or None)
            for ep in service.endpoints:
                status(f"serving {name}: {ep.subject} ({ep.spec.pattern.value})")
        status(f"ready on {bus.nc.connected_url.netloc if bus.nc.connected_url else args.nats_url}")
        await stopping.wait()
        status("draining")
    finally:
        await bus.close()
        if tel is not None:
            tel.shutdown()
    status("stopped")
    return 0


async def _request(args: argparse.Namespace) -> int:
    spec, payload = _typed(args, (Pattern.REQUEST_REPLY, Pattern.STREAM))
    bus = await _connected(args)
    try:
        options: dict[str, Any] = {"timeout": args.timeout} if args.timeout else {}
        if args.retries:
            if spec.pattern is Pattern.STREAM:
                raise CommandError("--retries applies to requests; a stream is not sent again")
            options["retries"] = args.retries
        if spec.pattern is Pattern.STREAM:
            async for chunk in bus.stream(spec, payload, args.tenant, options):
                print(_json(chunk), flush=True)
        else:
            print(_json(await bus.request(spec, payload, args.tenant, options)))
    finally:
        await bus.close()
    return 0


async def _publish(args: argparse.Namespace) -> int:
    from runtime.codec import new_id

    spec, payload = _typed(args, (Pattern.EVENT, Pattern.WORK_QUEUE))
    bus = await _connected(args)
    message_id = args.message_id or new_id()
    try:
        await bus.publish(spec, payload, args.tenant, {"message_id": message_id})
    finally:
        await bus.close()
    print(json.dumps({"published": bus.subject(spec, args.tenant), "id": message_id}))
    return 0


async def _tail(args: argparse.Namespace) -> int:
    from runtime.bus import Observed

    spec = registry.spec(args.operation, tuple(Pattern))
    if args.tenant is not None:
        check_tenant(args.tenant)
    bus = await _connected(args)
    done = asyncio.Event()
    seen = 0
    # Raised here, not in the subscription callback, where the client would
    # only log it: the reader of stdout left (`aisdk tail ... | head -3`).
    broken: list[BrokenPipeError] = []

    async def show(o: Observed) -> None:
        nonlocal seen
        if o.error is not None or o.envelope is None:
            row: dict[str, Any] = {"subject": o.subject, "error": str(o.error)}
        else:
            env = o.envelope
            row = {
                "subject": o.subject,
                "id": env.id,
                "type": env.type,
                "tenant_id": env.tenant_id,
                "time": env.time.ToJsonString(),
                "source": env.source,
                "payload": json_format.MessageToDict(o.payload, preserving_proto_field_name=True),
            }
        try:
            print(json.dumps(row), flush=True)
        except BrokenPipeError as e:
            broken.append(e)
            done.set()
            return
        seen += 1
        if args.count and seen >= args.count:
            done.set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, done.set)
    try:
        await bus.subscribe(spec, show, tenant_id=args.tenant)
        await bus.flush()
        status(f"tailing {spec.wildcard(bus.prefix) if args.tenant is None else bus.subject(spec, args.tenant)}")
        await done.wait()
    finally:
        await bus.close()
    if broken:
        raise broken[0]
    return 0


def register(sub: Any) -> None:
    url = connection_args

    p = sub.add_parser("server", help="run an embedded nats-server with JetStream; prints its URL")
    p.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    p.add_argument("--no-jetstream", action="store_true")
    p.add_argument("--store-dir", "--store", dest="store", metavar="DIR",
                   help="JetStream store directory (default: the project's state, see `aisdk db`)")
    p.add_argument("--ephemeral", action="store_true",
                   help="keep JetStream in a temporary directory, deleted at exit (tests, demos)")
    p.add_argument("--config", metavar="FILE",
                   help="a nats-server configuration (aisdk auth init writes one), which sets the port, "
                   "accounts, TLS and JetStream; SIGHUP reloads it")
    p.set_defaults(func=cmd_server)

    p = sub.add_parser("serve", help="run components' handlers until SIGTERM/SIGINT, then drain",
                       description="Status lines go to stderr. Traces when OTEL_* variables are set; "
                       "the service name is $OTEL_SERVICE_NAME, else the components' names.")
    p.add_argument("components", nargs="+", metavar="COMPONENT")
    p.add_argument("--tenant", action="append", help="serve only this tenant (repeatable; default: all)")
    p.add_argument("--metrics-port", type=int, metavar="N",
                   help="expose the metrics in Prometheus format at http://HOST:N/metrics")
    p.add_argument("--metrics-host", metavar="HOST",
                   help="the address the metrics endpoint listens on (default localhost; 0.0.0.0 in a container)")
    url(p)
    p.set_defaults(func=lambda a: _run(_serve(a)))

    p = sub.add_parser("request", help="send a typed request and print the reply as JSON")
    p.add_argument("operation", help="e.g. gateway.requests")
    p.add_argument("--tenant", required=True)
    p.add_argument("--data", required=True, help="the payload as proto JSON; empty generated ids are filled in")
    p.add_argument("--timeout", type=float, help="seconds (default: the registry's)")
    p.add_argument("--retries", type=int, default=0, metavar="N",
                   help="send the request again up to N times after a retryable error, waiting its retry-after")
    url(p)
    p.set_defaults(func=lambda a: _run(_request(a)))

    p = sub.add_parser("publish", help="publish a typed event or work item")
    p.add_argument("operation", help="e.g. agent.status")
    p.add_argument("--tenant", required=True)
    p.add_argument("--data", required=True, help="the payload as proto JSON; empty generated ids are filled in")
    p.add_argument("--message-id", help="deduplication id on durable subjects (default: a new one)")
    url(p)
    p.set_defaults(func=lambda a: _run(_publish(a)))

    p = sub.add_parser("tail", help="print live messages of an operation, decoded")
    p.add_argument("operation", help="e.g. gateway.responses")
    p.add_argument("--tenant", help="only this tenant (default: all)")
    p.add_argument("--count", type=int, default=0, help="exit after this many messages")
    url(p)
    p.set_defaults(func=lambda a: _run(_tail(a)))
