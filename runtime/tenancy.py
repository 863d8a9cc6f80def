"""A nats-server configuration that isolates tenants, rendered from the
subject registry.

One account per tenant, named by its tenant id, and one for the services.
For each tenant and each registry subject of that tenant the services'
account exports:

- a service (requests, streams, and publishes into its JetStream streams,
  whose acks must come back), imported by the tenant with `share: true`, so
  that the server stamps the caller's account on every request
  (`Nats-Request-Info`, which clients cannot forge);
- for events and work queues, also a stream, so that the tenant sees what
  the services publish on its own subjects.

Nothing else crosses an account: another tenant's subjects, its replies
(`_INBOX.>`), its JetStream and `$SRV` discovery are simply not there. The
platform's durable streams live in the services' account, out of tenants'
reach; each tenant has JetStream in its own account for its own data.
Measured on this server version: a layout of user permissions in one
account leaks replies, which is why this one uses accounts.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from runtime.contract import DEFAULT_PREFIX, Pattern, SubjectSpec, check_tenant
from runtime.errors import InvalidSettings

SERVICES_ACCOUNT = "SERVICES"
# Names the server keeps for itself, or that would read as the services'.
RESERVED = frozenset({SERVICES_ACCOUNT, "SYS", "$SYS", "$G"})
REQUEST_INFO_HEADER = "Nats-Request-Info"
_PUBLISHED = (Pattern.EVENT, Pattern.WORK_QUEUE)


@dataclass(frozen=True, slots=True)
class ServerTLS:
    """Files of the server's certificate and the CA its clients' certificates
    must chain to (mutual TLS: a client without one is refused)."""

    cert_file: str
    key_file: str
    ca_file: str


@dataclass(frozen=True, slots=True)
class Layout:
    """What the configuration is rendered from: who may connect (public
    nkeys), and where the server listens and keeps its JetStream data."""

    tenants: Mapping[str, str]
    services: str
    host: str = "127.0.0.1"
    port: int = 4222
    store_dir: str = ""
    tls: ServerTLS | None = None
    prefix: str = DEFAULT_PREFIX
    # 0: nats-server's default (1 MiB); aisdk auth init sets what the contracts need.
    max_payload: int = 0

    def __post_init__(self) -> None:
        if not self.tenants:
            raise InvalidSettings("Layout", "tenants", self.tenants, "needs at least one tenant")
        for tenant in self.tenants:
            check_tenant_name(tenant)


def check_tenant_name(tenant: str) -> str:
    """A tenant id that can also name an account."""
    check_tenant(tenant)
    if tenant.upper() in RESERVED:
        raise InvalidSettings("tenant", "id", tenant, f"is reserved ({', '.join(sorted(RESERVED))})")
    return tenant


def _q(value: str) -> str:
    # NATS configuration accepts JSON strings: quoting cannot go wrong.
    return json.dumps(value)


def _subjects(specs: Iterable[SubjectSpec[Any, Any]], tenant: str, prefix: str) -> list[SubjectSpec[Any, Any]]:
    return sorted(specs, key=lambda s: s.subject(tenant, prefix))


def _exports(specs: list[SubjectSpec[Any, Any]], tenant: str, prefix: str) -> list[str]:
    rows = []
    for spec in _subjects(specs, tenant, prefix):
        subject = _q(spec.subject(tenant, prefix))
        response = "stream" if spec.pattern is Pattern.STREAM else "singleton"
        rows.append(f"{{service: {subject}, response_type: {response}, accounts: [{_q(tenant)}]}}")
        if spec.pattern in _PUBLISHED:
            rows.append(f"{{stream: {subject}, accounts: [{_q(tenant)}]}}")
    return rows


def _imports(specs: list[SubjectSpec[Any, Any]], tenant: str, prefix: str) -> list[str]:
    rows = []
    services = _q(SERVICES_ACCOUNT)
    for spec in _subjects(specs, tenant, prefix):
        subject = _q(spec.subject(tenant, prefix))
        rows.append(f"{{service: {{account: {services}, subject: {subject}}}, share: true}}")
        if spec.pattern in _PUBLISHED:
            rows.append(f"{{stream: {{account: {services}, subject: {subject}}}}}")
    return rows


def _block(name: str, rows: list[str], indent: str) -> list[str]:
    if not rows:
        return []
    return [f"{indent}{name}: [", *(f"{indent}  {row}" for row in rows), f"{indent}]"]


def _account(name: str, nkey: str, exports: list[str], imports: list[str]) -> list[str]:
    return [
        f"  {_q(name)} {{",
        "    jetstream: enabled",
        f"    users: [{{nkey: {_q(nkey)}}}]",
        *_block("exports", exports, "    "),
        *_block("imports", imports, "    "),
        "  }",
    ]


def render(specs: Iterable[SubjectSpec[Any, Any]], layout: Layout) -> str:
    """The nats-server configuration for `layout`, from the registry's specs."""
    specs = list(specs)
    tenants = sorted(layout.tenants)
    lines = [
        "# Generated from the subject registry: regenerate it, then reload the",
        "# server (SIGHUP) to add or remove a tenant. Do not edit.",
        f"listen: {_q(f'{layout.host}:{layout.port}')}",
        "jetstream {" + (f" store_dir: {_q(layout.store_dir)} " if layout.store_dir else " ") + "}",
    ]
    if layout.max_payload:
        lines.append(f"max_payload: {layout.max_payload}")
    if layout.tls is not None:
        t = layout.tls
        lines += [
            "tls {",
            f"  cert_file: {_q(t.cert_file)}",
            f"  key_file: {_q(t.key_file)}",
            f"  ca_file: {_q(t.ca_file)}",
            "  verify: true",
            "}",
        ]
    exports = [row for tenant in tenants for row in _exports(specs, tenant, layout.prefix)]
    lines += ["accounts {", *_account(SERVICES_ACCOUNT, layout.services, exports, [])]
    for tenant in tenants:
        lines += _account(tenant, layout.tenants[tenant], [], _imports(specs, tenant, layout.prefix))
    lines.append("}")
    return "\n".join(lines) + "\n"


def stamped_account(headers: Mapping[str, str] | None) -> str | None:
    """The account the server stamped on a request that crossed accounts
    (`Nats-Request-Info: {"acc": ...}`), or None when it did not cross one."""
    if not headers:
        return None
    raw = headers.get(REQUEST_INFO_HEADER)
    if raw is None:
        return None
    try:
        account = json.loads(raw).get("acc")
    except (ValueError, AttributeError):
        return ""
    return account if isinstance(account, str) else ""
