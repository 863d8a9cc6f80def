"""The registry check: what buf cannot see because it lives in the
`(ai.options.v1.subject)` option of each rpc.

Publishers and subscribers find each other by subject, split work by queue
group and agree on the payload and reply types; JetStream keeps what a
durable subject promised to keep. Changing any of these between two
versions that run at the same time on one bus loses or misroutes messages,
whatever buf says about the descriptors.
"""

from __future__ import annotations

from dataclasses import dataclass

from codegen.model import ContractError, DurabilityModel
from compat.images import PROTO_DIR, Image
from compat.report import Finding, Severity
from runtime.contract import DEFAULT_PREFIX

_SERVICE, _METHOD = 6, 2  # FileDescriptorProto.service, ServiceDescriptorProto.method


@dataclass(frozen=True)
class Entry:
    key: str  # "agent.tasks"
    file: str
    line: int  # 0 when the image has no source info
    service: str
    rpc: str
    operation: str
    pattern: str
    queue_group: str
    request_type: str
    reply_type: str
    durability: DurabilityModel | None
    reply_event: str

    @property
    def subject(self) -> str:
        return f"{DEFAULT_PREFIX}.{self.key}.{{tenant_id}}"

    @property
    def method(self) -> str:
        return f"{self.service}.{self.rpc}"

    @property
    def where(self) -> str:
        path = f"{PROTO_DIR}/{self.file}"
        return f"{path}:{self.line}" if self.line else path


def registry(image: Image) -> dict[str, Entry]:
    """Every subject of the image by registry key; ContractError if the
    generator would refuse the contracts."""
    lines: dict[tuple[str, int, int], int] = {}
    for fdp in image.contract_files():
        for loc in fdp.source_code_info.location:
            if len(loc.path) == 4 and loc.path[0] == _SERVICE and loc.path[2] == _METHOD:
                lines[(fdp.name, loc.path[1], loc.path[3])] = loc.span[0] + 1
    out: dict[str, Entry] = {}
    for fm in image.model.files:
        for si, service in enumerate(fm.services):
            for mi, rpc in enumerate(service.rpcs):
                key = f"{fm.component}.{rpc.operation}"
                out[key] = Entry(
                    key=key,
                    file=fm.name,
                    line=lines.get((fm.name, si, mi), 0),
                    service=service.full_name,
                    rpc=rpc.name,
                    operation=rpc.operation,
                    pattern=rpc.pattern,
                    queue_group=rpc.queue_group,
                    request_type=rpc.request_type,
                    reply_type=rpc.reply_type,
                    durability=rpc.durability,
                    reply_event=rpc.reply_event,
                )
    return out


def check(old: Image, new: Image) -> list[Finding]:
    """Subjects of `old` that `new` removed, renamed or changed."""
    try:
        before = registry(old)
    except ContractError as e:
        return [Finding("registry", "", f"{old.label} is not a valid contract set: {e}", "CONTRACT_VALID", "warning")]
    try:
        after = registry(new)
    except ContractError as e:
        return [Finding("registry", "", str(e), "CONTRACT_VALID")]
    return diff(before, after)


def diff(before: dict[str, Entry], after: dict[str, Entry]) -> list[Finding]:
    found: list[Finding] = []
    by_method = {e.method: e for e in after.values()}
    renamed: set[str] = set()
    for key, old in sorted(before.items()):
        new = after.get(key)
        if new is not None:
            found += _changes(old, new)
            continue
        moved = by_method.get(old.method)
        if moved is None:
            gone = "subject removed: its publishers and subscribers of older versions are left alone"
            found.append(_finding(old, gone, "SUBJECT_NO_DELETE"))
            continue
        renamed.add(moved.key)
        found.append(
            _finding(
                moved,
                f"subject renamed from {old.subject} (operation {old.operation!r} -> {moved.operation!r}): "
                "publishers and subscribers of the two versions no longer meet",
                "SUBJECT_SAME_OPERATION",
            )
        )
    for key in sorted(after.keys() - before.keys() - renamed):
        found.append(_finding(after[key], f"subject added ({after[key].pattern})", "SUBJECT_ADDED", "info"))
    return found


def _changes(old: Entry, new: Entry) -> list[Finding]:
    found: list[Finding] = []

    def changed(what: str, before: str, after: str, rule: str, why: str) -> None:
        if before != after:
            found.append(_finding(new, f"{what} changed from {before} to {after}: {why}", rule))

    changed("pattern", old.pattern, new.pattern, "SUBJECT_SAME_PATTERN", "the two versions expect different replies")
    changed(
        "request type", old.request_type, new.request_type, "SUBJECT_SAME_REQUEST_TYPE",
        "subscribers cannot decode what the other version publishes",
    )
    changed(
        "reply type", old.reply_type, new.reply_type, "SUBJECT_SAME_REPLY_TYPE",
        "requesters cannot decode what the other version replies",
    )
    changed(
        "queue group", old.queue_group or "(none)", new.queue_group or "(none)", "SUBJECT_SAME_QUEUE_GROUP",
        "during a rollout both groups receive every message",
    )
    if old.reply_event and old.reply_event != new.reply_event:
        changed(
            "reply_event", old.reply_event, new.reply_event or "(none)", "SUBJECT_SAME_REPLY_EVENT",
            "observers of the replies stop receiving them",
        )
    if old.durability is not None and new.durability is None:
        found.append(
            _finding(
                new,
                "durable subject made non-durable: messages published while no subscriber is connected are "
                "lost, and the JetStream consumers of older versions stop receiving",
                "SUBJECT_STAYS_DURABLE",
            )
        )
    elif old.durability is None and new.durability is not None:
        found.append(
            _finding(
                new,
                "made durable: publishers of older versions do not wait for the JetStream acknowledgement, "
                "so their messages stay at-most-once until they upgrade",
                "SUBJECT_BECAME_DURABLE",
                "warning",
            )
        )
    elif old.durability is not None and new.durability is not None:
        changed(
            "retention", old.durability.retention, new.durability.retention, "SUBJECT_SAME_RETENTION",
            "JetStream cannot change the retention of an existing stream",
        )
    if old.method != new.method:
        found.append(
            _finding(
                new,
                f"served by {new.method}, was {old.method}: the subject is unchanged but the generated "
                "client and handler methods are renamed",
                "SUBJECT_SAME_RPC",
                "warning",
            )
        )
    return found


def _finding(entry: Entry, text: str, rule: str, severity: Severity = "error") -> Finding:
    return Finding("registry", entry.where, f"{entry.method} ({entry.subject}): {text}", rule, severity)
