"""Request -> model: what the renderer needs, resolved and checked once.

Custom options are read through a descriptor pool built from the request
itself, so the plugin needs no generated code of its own (it can regenerate
`generated/` from nothing).
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.compiler import plugin_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

OPTIONS_PACKAGE = "ai.options.v1"
EMPTY = "google.protobuf.Empty"
_PACKAGE_RE = re.compile(r"[a-z][a-z0-9_]*\.([a-z][a-z0-9_]*)\.v([1-9][0-9]*)")
_OPERATION_RE = re.compile(r"[a-z][a-z0-9-]*(\.[a-z][a-z0-9-]*)*")
_QUEUE_RE = re.compile(r"[A-Za-z0-9_.-]*")
_PATTERNS = {1: "EVENT", 2: "WORK_QUEUE", 3: "REQUEST_REPLY", 4: "STREAM"}
_RETENTIONS = {0: "limits", 1: "limits", 2: "interest", 3: "work_queue"}
COMPATIBILITY = {0: "BACKWARD", 1: "BACKWARD", 2: "FORWARD", 3: "FULL"}


class ContractError(Exception):
    """A contract the generator cannot accept; the message names the place."""


@dataclass(frozen=True)
class Rules:
    required: bool = False
    min_len: int | None = None
    max_len: int | None = None
    pattern: str = ""
    gte: float | None = None
    lte: float | None = None
    min_items: int | None = None
    max_items: int | None = None
    defined_only: bool = False
    generated_id: bool = False

    @property
    def checks(self) -> bool:
        """Whether a validator has anything to check (generated_id is not a check)."""
        return self != Rules(generated_id=self.generated_id)


@dataclass(frozen=True)
class FieldModel:
    name: str
    kind: str  # "string", "bytes", "number", "bool", "enum", "message", "map"
    repeated: bool
    presence: bool
    rules: Rules
    message_type: str  # full name, for "message" fields
    enum_values: tuple[int, ...]


@dataclass
class MessageModel:
    full_name: str
    file: str
    py_ref: str  # e.g. "Error.FieldViolation", relative to its _pb2 module
    fields: list[FieldModel]
    has_rules: bool = False

    @property
    def generated_ids(self) -> tuple[str, ...]:
        """The fields a sender fills with a new id (option generated_id)."""
        return tuple(f.name for f in self.fields if f.rules.generated_id)

    @property
    def validator_name(self) -> str:
        return "validate_" + snake(self.py_ref.replace(".", "_"))


@dataclass(frozen=True)
class DurabilityModel:
    retention: str
    max_deliver: int
    ack_wait_ms: int
    backoff_ms: tuple[int, ...]
    duplicate_window_ms: int
    max_age_s: int


@dataclass(frozen=True)
class RpcModel:
    name: str
    method: str
    operation: str
    pattern: str
    queue_group: str
    request_type: str
    reply_type: str
    timeout_ms: int
    durability: DurabilityModel | None
    reply_event: str

    @property
    def constant(self) -> str:
        return re.sub(r"[^A-Z0-9]+", "_", self.operation.upper())


@dataclass(frozen=True)
class ServiceModel:
    name: str
    full_name: str
    rpcs: tuple[RpcModel, ...]


@dataclass
class FileModel:
    name: str
    package: str
    component: str
    major: int
    minor: int
    messages: list[MessageModel]
    services: list[ServiceModel]
    # How its validation rules may change between versions (compat.rules).
    compatibility: str = "BACKWARD"

    @property
    def module(self) -> str:
        return self.name[: -len(".proto")].replace("/", ".")

    @property
    def pb2(self) -> str:
        return self.name.rsplit("/", 1)[-1][: -len(".proto")] + "_pb2"

    @property
    def bus(self) -> str:
        return self.name.rsplit("/", 1)[-1][: -len(".proto")] + "_bus"

    @property
    def py_package(self) -> str:
        return self.module.rsplit(".", 1)[0]


@dataclass
class Model:
    files: list[FileModel]
    messages: dict[str, MessageModel] = field(default_factory=dict)
    # message full name -> (proto file, reference inside its _pb2 module)
    types: dict[str, tuple[str, str]] = field(default_factory=dict)


def snake(name: str) -> str:
    s = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name)
    s = re.sub(r"(?<=[A-Z])([A-Z][a-z])", r"_\1", s).lower()
    return s + "_" if keyword.iskeyword(s) else s


class _Options:
    """Reads our extensions out of raw option messages."""

    def __init__(self, pool: descriptor_pool.DescriptorPool) -> None:
        self._classes: dict[str, type[Message]] = {}
        self._pool = pool
        self.subject = pool.FindExtensionByName(f"{OPTIONS_PACKAGE}.subject")
        self.rules = pool.FindExtensionByName(f"{OPTIONS_PACKAGE}.rules")
        self.contract = pool.FindExtensionByName(f"{OPTIONS_PACKAGE}.contract")

    def read(self, options: Message, extension: FieldDescriptor) -> Message | None:
        name = options.DESCRIPTOR.full_name
        cls = self._classes.get(name)
        if cls is None:
            cls = message_factory.GetMessageClass(self._pool.FindMessageTypeByName(name))
            self._classes[name] = cls
        parsed = cls.FromString(options.SerializeToString())
        if not parsed.HasExtension(extension):  # type: ignore[arg-type]
            return None
        value: Message = parsed.Extensions[extension]  # type: ignore[index]
        return value


def _opt(msg: Message, name: str) -> object | None:
    return getattr(msg, name) if msg.HasField(name) else None


def _rules(opts: _Options, fd: descriptor_pb2.FieldDescriptorProto) -> Rules:
    raw = opts.read(fd.options, opts.rules)
    if raw is None:
        return Rules()
    return Rules(
        required=bool(getattr(raw, "required")),
        min_len=_opt(raw, "min_len"),  # type: ignore[arg-type]
        max_len=_opt(raw, "max_len"),  # type: ignore[arg-type]
        pattern=str(getattr(raw, "pattern")),
        gte=_opt(raw, "gte"),  # type: ignore[arg-type]
        lte=_opt(raw, "lte"),  # type: ignore[arg-type]
        min_items=_opt(raw, "min_items"),  # type: ignore[arg-type]
        max_items=_opt(raw, "max_items"),  # type: ignore[arg-type]
        defined_only=bool(getattr(raw, "defined_only")),
        # Absent from images built with an options.proto older than the field
        # (the released baselines).
        generated_id=bool(getattr(raw, "generated_id", False)),
    )


def _kind(fd: FieldDescriptor) -> str:
    t = fd.type
    if t == FieldDescriptor.TYPE_STRING:
        return "string"
    if t == FieldDescriptor.TYPE_BYTES:
        return "bytes"
    if t == FieldDescriptor.TYPE_BOOL:
        return "bool"
    if t == FieldDescriptor.TYPE_ENUM:
        return "enum"
    if t in (FieldDescriptor.TYPE_MESSAGE, FieldDescriptor.TYPE_GROUP):
        assert fd.message_type is not None
        return "map" if fd.message_type.GetOptions().map_entry else "message"
    return "number"


def _check_rules(where: str, f: FieldModel) -> None:
    r = f.rules
    scalar_text = f.kind in ("string", "bytes") and not f.repeated
    if (r.min_len is not None or r.max_len is not None or r.pattern) and not scalar_text:
        raise ContractError(f"{where}: min_len/max_len/pattern apply to singular string or bytes fields")
    if r.pattern:
        if f.kind != "string":
            raise ContractError(f"{where}: pattern applies to string fields")
        try:
            re.compile(r.pattern)
        except re.error as e:
            raise ContractError(f"{where}: pattern {r.pattern!r} is not a valid regular expression: {e}") from e
    if (r.gte is not None or r.lte is not None) and (f.kind != "number" or f.repeated):
        raise ContractError(f"{where}: gte/lte apply to singular numeric fields")
    if (r.min_items is not None or r.max_items is not None) and not (f.repeated or f.kind == "map"):
        raise ContractError(f"{where}: min_items/max_items apply to repeated and map fields")
    if r.defined_only and f.kind != "enum":
        raise ContractError(f"{where}: defined_only applies to enum fields")
    if r.generated_id and (f.kind != "string" or f.repeated):
        raise ContractError(f"{where}: generated_id applies to singular string fields")
    for lo, hi, what in ((r.min_len, r.max_len, "len"), (r.gte, r.lte, "range"), (r.min_items, r.max_items, "items")):
        if lo is not None and hi is not None and lo > hi:
            raise ContractError(f"{where}: min {what} {lo} is greater than max {hi}")


def _messages(
    opts: _Options, fdp: descriptor_pb2.FileDescriptorProto, pool: descriptor_pool.DescriptorPool
) -> list[MessageModel]:
    out: list[MessageModel] = []

    def walk(protos: list[descriptor_pb2.DescriptorProto], scope: str, ref: str) -> None:
        for mp in protos:
            full = f"{scope}.{mp.name}"
            py_ref = f"{ref}.{mp.name}" if ref else mp.name
            if mp.options.map_entry:
                continue
            desc: Descriptor = pool.FindMessageTypeByName(full)
            fields: list[FieldModel] = []
            for fp in mp.field:
                fd = desc.fields_by_name[fp.name]
                kind = _kind(fd)
                model = FieldModel(
                    name=fp.name,
                    kind=kind,
                    repeated=fd.is_repeated and kind != "map",
                    presence=fd.has_presence and not fd.is_repeated,
                    rules=_rules(opts, fp),
                    message_type=fd.message_type.full_name if fd.message_type is not None else "",
                    enum_values=tuple(sorted({v.number for v in fd.enum_type.values}))
                    if fd.enum_type is not None
                    else (),
                )
                _check_rules(f"{fdp.name}: {full} field {fp.number} {fp.name!r}", model)
                fields.append(model)
            out.append(MessageModel(full_name=full, file=fdp.name, py_ref=py_ref, fields=fields))
            walk(list(mp.nested_type), full, py_ref)

    walk(list(fdp.message_type), fdp.package, "")
    return out


def _durability(raw: Message) -> DurabilityModel | None:
    if not raw.HasField("durability") or not getattr(raw.durability, "durable"):  # type: ignore[attr-defined]
        return None
    d = raw.durability  # type: ignore[attr-defined]
    return DurabilityModel(
        retention=_RETENTIONS[d.retention],
        max_deliver=d.max_deliver,
        ack_wait_ms=d.ack_wait_ms,
        backoff_ms=tuple(d.backoff_ms),
        duplicate_window_ms=d.duplicate_window_ms,
        max_age_s=d.max_age_s,
    )


def _rpc(opts: _Options, where: str, mp: descriptor_pb2.MethodDescriptorProto) -> RpcModel:
    raw = opts.read(mp.options, opts.subject)
    if raw is None:
        raise ContractError(f"{where}: every rpc needs option (ai.options.v1.subject)")
    operation = str(getattr(raw, "operation"))
    if _OPERATION_RE.fullmatch(operation) is None:
        raise ContractError(
            f"{where}: operation {operation!r} must be lower-case subject tokens "
            "(letters, digits, '-') joined by '.'"
        )
    pattern = _PATTERNS.get(int(getattr(raw, "pattern")))
    if pattern is None:
        raise ContractError(f"{where}: pattern must be set")
    queue_group = str(getattr(raw, "queue_group"))
    if _QUEUE_RE.fullmatch(queue_group) is None:
        raise ContractError(f"{where}: queue_group {queue_group!r} is not a valid NATS queue name")
    reply = mp.output_type.lstrip(".")
    timeout_ms = int(getattr(raw, "timeout_ms"))
    durability = _durability(raw)
    replies = pattern in ("REQUEST_REPLY", "STREAM")
    if replies and reply == EMPTY:
        raise ContractError(f"{where}: {pattern} rpcs must return a reply type, not {EMPTY}")
    if not replies and reply != EMPTY:
        raise ContractError(f"{where}: {pattern} rpcs return {EMPTY} (they are never answered)")
    if replies and timeout_ms <= 0:
        raise ContractError(f"{where}: {pattern} rpcs need timeout_ms > 0")
    if (pattern == "STREAM") != mp.server_streaming or mp.client_streaming:
        raise ContractError(f"{where}: only a STREAM rpc, and every one, returns `stream` of its chunk type")
    if pattern == "WORK_QUEUE" and not queue_group:
        raise ContractError(f"{where}: a WORK_QUEUE rpc needs a queue_group")
    if durability is not None and replies:
        raise ContractError(f"{where}: only EVENT and WORK_QUEUE subjects can be durable")
    if durability is not None and durability.max_deliver < 1:
        raise ContractError(f"{where}: a durable subject needs max_deliver >= 1")
    reply_event = str(getattr(raw, "reply_event"))
    if reply_event and pattern != "REQUEST_REPLY":
        raise ContractError(f"{where}: reply_event applies to REQUEST_REPLY rpcs")
    return RpcModel(
        name=mp.name,
        method=snake(mp.name),
        operation=operation,
        pattern=pattern,
        queue_group=queue_group,
        request_type=mp.input_type.lstrip("."),
        reply_type=reply,
        timeout_ms=timeout_ms,
        durability=durability,
        reply_event=reply_event,
    )


def _file(
    opts: _Options, fdp: descriptor_pb2.FileDescriptorProto, pool: descriptor_pool.DescriptorPool
) -> FileModel:
    m = _PACKAGE_RE.fullmatch(fdp.package)
    if m is None:
        raise ContractError(f"{fdp.name}: package {fdp.package!r} must look like ai.<component>.v<major>")
    contract = opts.read(fdp.options, opts.contract)
    minor = int(getattr(contract, "minor")) if contract is not None else 0
    # Absent from images built with an options.proto older than the field.
    mode = int(getattr(contract, "compatibility", 0)) if contract is not None else 0
    services: list[ServiceModel] = []
    for sp in fdp.service:
        rpcs = tuple(_rpc(opts, f"{fdp.name}: {fdp.package}.{sp.name}.{mp.name}", mp) for mp in sp.method)
        services.append(ServiceModel(name=sp.name, full_name=f"{fdp.package}.{sp.name}", rpcs=rpcs))
    return FileModel(
        name=fdp.name,
        package=fdp.package,
        component=m.group(1),
        major=int(m.group(2)),
        minor=minor,
        messages=_messages(opts, fdp, pool),
        services=services,
        compatibility=COMPATIBILITY.get(mode, "BACKWARD"),
    )


def _link(model: Model) -> None:
    """Mark messages with rules, transitively through message fields."""
    changed = True
    while changed:
        changed = False
        for msg in model.messages.values():
            if msg.has_rules:
                continue
            for f in msg.fields:
                nested = model.messages.get(f.message_type)
                if f.rules.checks or (nested is not None and nested.has_rules):
                    msg.has_rules = changed = True
                    break


def _check_registry(model: Model) -> None:
    seen: dict[str, str] = {}
    for fm in model.files:
        ops = {r.operation: r for s in fm.services for r in s.rpcs}
        for s in fm.services:
            for r in s.rpcs:
                key = f"{fm.component}.{r.operation}"
                where = f"{fm.name}: {s.full_name}.{r.name}"
                if key in seen:
                    raise ContractError(f"{where}: subject {key!r} is already bound by {seen[key]}")
                seen[key] = where
                if r.reply_event:
                    target = ops.get(r.reply_event)
                    if target is None or target.pattern != "EVENT":
                        raise ContractError(
                            f"{where}: reply_event {r.reply_event!r} is not an EVENT operation of {fm.component}"
                        )
                    if target.request_type != r.reply_type:
                        raise ContractError(
                            f"{where}: reply_event {r.reply_event!r} carries {target.request_type}, "
                            f"not the reply type {r.reply_type}"
                        )


def _index_types(
    model: Model, file: str, protos: list[descriptor_pb2.DescriptorProto], scope: str, ref: str
) -> None:
    for mp in protos:
        py_ref = f"{ref}.{mp.name}" if ref else mp.name
        model.types[f"{scope}.{mp.name}"] = (file, py_ref)
        _index_types(model, file, list(mp.nested_type), f"{scope}.{mp.name}", py_ref)


def build(request: plugin_pb2.CodeGeneratorRequest) -> Model:
    pool = descriptor_pool.DescriptorPool()
    for fdp in request.proto_file:
        pool.Add(fdp)
    try:
        opts = _Options(pool)
    except KeyError as e:
        raise ContractError(f"the request does not include {OPTIONS_PACKAGE}: import ai/options/v1/options.proto") from e
    wanted = set(request.file_to_generate)
    model = Model(files=[])
    for fdp in request.proto_file:
        _index_types(model, fdp.name, list(fdp.message_type), fdp.package, "")
        if fdp.package.startswith("google.protobuf"):
            continue
        fm = _file(opts, fdp, pool)
        for msg in fm.messages:
            model.messages[msg.full_name] = msg
        if fdp.name in wanted:
            model.files.append(fm)
    model.files.sort(key=lambda f: f.name)
    _link(model)
    _check_registry(model)
    return model
