"""`aisdk auth init`: a nats-server configuration that isolates tenants, with
their keys (and, with --tls, a development CA and certificates).

    aisdk auth init --tenants acme,globex --dir deploy/nats
    aisdk server --config deploy/nats/nats-server.conf
    aisdk serve rag --creds deploy/nats/service.nk
    aisdk request rag.queries --tenant acme --creds deploy/nats/acme.nk --data '{...}'

Running it again with more (or fewer) tenants keeps the keys already in the
directory and rewrites the configuration: reload the server (SIGHUP) and the
change takes effect without a restart.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from aisdk.cli import extras, registry
from aisdk.cli.errors import CommandError
from runtime.errors import InvalidSettings

CONFIG_FILE = "nats-server.conf"
SERVICE = "service"
CA_FILES = ("ca.pem", "ca-key.pem")
# What a development certificate of the server is valid for.
SERVER_NAMES = ("localhost", "127.0.0.1", "::1")


def key_file(directory: Path, identity: str) -> Path:
    return directory / f"{identity}.nk"


def cert_files(directory: Path, identity: str) -> tuple[Path, Path]:
    return directory / f"{identity}-cert.pem", directory / f"{identity}-key.pem"


def _write_secret(path: Path, data: bytes) -> None:
    # Created private: a seed or a key is never readable by others, not even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def user_key(path: Path) -> str:
    """The public nkey of the user seed in `path`, made on first use."""
    import nkeys  # type: ignore[import-untyped]

    if not path.exists():
        _write_secret(path, nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER) + b"\n")
    try:
        pair = nkeys.from_seed(bytearray(path.read_bytes().strip()))
        public: bytes = pair.public_key
    except (nkeys.NkeysError, OSError, ValueError) as e:
        raise CommandError(f"{path} is not an nkey user seed ({e or type(e).__name__}): remove it to make a new one") from None
    return public.decode()


def tls_files(directory: Path, identities: list[str]) -> tuple[str, str, str]:
    """A development CA (kept across runs), the server's certificate, and a
    client certificate per identity. Returns the server's (cert, key, ca)."""
    import trustme

    ca_cert, ca_key = (directory / name for name in CA_FILES)
    if ca_cert.exists() and ca_key.exists():
        ca = trustme.CA.from_pem(ca_cert.read_bytes(), ca_key.read_bytes())
    else:
        ca = trustme.CA(organization_name="aisdk development")
        ca.cert_pem.write_to_path(str(ca_cert))
        _write_secret(ca_key, ca.private_key_pem.bytes())
    for identity, names in (("server", SERVER_NAMES), *((i, (f"{i}.clients.aisdk",)) for i in identities)):
        leaf = ca.issue_cert(*names, common_name=identity)
        cert, key = cert_files(directory, identity)
        cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
        _write_secret(key, leaf.private_key_pem.bytes())
    server_cert, server_key = cert_files(directory, "server")
    return str(server_cert.resolve()), str(server_key.resolve()), str(ca_cert.resolve())


def _tenants(text: str) -> list[str]:
    from runtime.tenancy import check_tenant_name

    tenants = sorted({t.strip() for t in text.split(",") if t.strip()})
    if not tenants:
        raise CommandError("--tenants needs at least one tenant id, e.g. --tenants acme,globex")
    try:
        return [check_tenant_name(t) for t in tenants]
    except (InvalidSettings, ValueError) as e:
        raise CommandError(str(e)) from None


def cmd_init(args: argparse.Namespace) -> int:
    from runtime.server import contract_max_payload
    from runtime.tenancy import Layout, ServerTLS, render

    extras.require("aisdk auth init", extras.DEV, ("nkeys",) + (("trustme",) if args.tls else ()))
    tenants = _tenants(args.tenants)
    directory = Path(args.dir)
    directory.mkdir(parents=True, exist_ok=True)
    keys = {t: user_key(key_file(directory, t)) for t in tenants}
    service = user_key(key_file(directory, SERVICE))
    tls = ServerTLS(*tls_files(directory, [*tenants, SERVICE])) if args.tls else None
    store = args.store or str((directory / "jetstream").resolve())
    specs = registry.load().BY_KEY.values()
    layout = Layout(keys, service, host=args.host, port=args.port, store_dir=store, tls=tls,
                    max_payload=contract_max_payload(specs))
    config = directory / CONFIG_FILE
    text = render(specs, layout)
    tmp = config.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    # Whole or not at all: a server reloading mid-write must not read half a file.
    tmp.replace(config)
    # What to run with: the configuration, then each identity's connection options.
    print(config)
    for identity in [*tenants, SERVICE]:
        options = f"--creds {key_file(directory, identity)}"
        if args.tls:
            cert, key = cert_files(directory, identity)
            options += f" --tls-ca {directory / CA_FILES[0]} --tls-cert {cert} --tls-key {key}"
        print(f"  {identity}: {options}")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("auth", help="tenant isolation: server configuration, keys and certificates")
    auth = p.add_subparsers(dest="auth_command", required=True, metavar="ACTION")
    p = auth.add_parser(
        "init", help="write a nats-server configuration with one account per tenant, and their keys",
        description="Writes DIR/nats-server.conf (from the subject registry), an nkey seed per tenant "
        "(DIR/<tenant>.nk) and for the services (DIR/service.nk). Keys already in DIR are kept: run it "
        "again with more tenants, then reload the server (kill -HUP).",
    )
    p.add_argument("--tenants", required=True, help="tenant ids, comma-separated")
    p.add_argument("--dir", required=True, help="where to write the configuration and credentials")
    p.add_argument("--host", default="127.0.0.1", help="address the server listens on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=4222, help="client port (default 4222)")
    p.add_argument("--store", help="JetStream store directory (default DIR/jetstream)")
    p.add_argument("--tls", action="store_true",
                   help="also make a development CA and certificates, and require mutual TLS")
    p.set_defaults(func=cmd_init)
