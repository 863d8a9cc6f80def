from google.protobuf import descriptor_pb2 as _descriptor_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Pattern(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PATTERN_UNSPECIFIED: _ClassVar[Pattern]
    PATTERN_EVENT: _ClassVar[Pattern]
    PATTERN_WORK_QUEUE: _ClassVar[Pattern]
    PATTERN_REQUEST_REPLY: _ClassVar[Pattern]
    PATTERN_STREAM: _ClassVar[Pattern]

class Retention(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RETENTION_UNSPECIFIED: _ClassVar[Retention]
    RETENTION_LIMITS: _ClassVar[Retention]
    RETENTION_INTEREST: _ClassVar[Retention]
    RETENTION_WORK_QUEUE: _ClassVar[Retention]

class Compatibility(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COMPATIBILITY_UNSPECIFIED: _ClassVar[Compatibility]
    COMPATIBILITY_BACKWARD: _ClassVar[Compatibility]
    COMPATIBILITY_FORWARD: _ClassVar[Compatibility]
    COMPATIBILITY_FULL: _ClassVar[Compatibility]
PATTERN_UNSPECIFIED: Pattern
PATTERN_EVENT: Pattern
PATTERN_WORK_QUEUE: Pattern
PATTERN_REQUEST_REPLY: Pattern
PATTERN_STREAM: Pattern
RETENTION_UNSPECIFIED: Retention
RETENTION_LIMITS: Retention
RETENTION_INTEREST: Retention
RETENTION_WORK_QUEUE: Retention
COMPATIBILITY_UNSPECIFIED: Compatibility
COMPATIBILITY_BACKWARD: Compatibility
COMPATIBILITY_FORWARD: Compatibility
COMPATIBILITY_FULL: Compatibility
SUBJECT_FIELD_NUMBER: _ClassVar[int]
subject: _descriptor.FieldDescriptor
RULES_FIELD_NUMBER: _ClassVar[int]
rules: _descriptor.FieldDescriptor
CONTRACT_FIELD_NUMBER: _ClassVar[int]
contract: _descriptor.FieldDescriptor

class Durability(_message.Message):
    __slots__ = ("durable", "retention", "max_deliver", "ack_wait_ms", "backoff_ms", "duplicate_window_ms", "max_age_s")
    DURABLE_FIELD_NUMBER: _ClassVar[int]
    RETENTION_FIELD_NUMBER: _ClassVar[int]
    MAX_DELIVER_FIELD_NUMBER: _ClassVar[int]
    ACK_WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    BACKOFF_MS_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_WINDOW_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_AGE_S_FIELD_NUMBER: _ClassVar[int]
    durable: bool
    retention: Retention
    max_deliver: int
    ack_wait_ms: int
    backoff_ms: _containers.RepeatedScalarFieldContainer[int]
    duplicate_window_ms: int
    max_age_s: int
    def __init__(self, durable: _Optional[bool] = ..., retention: _Optional[_Union[Retention, str]] = ..., max_deliver: _Optional[int] = ..., ack_wait_ms: _Optional[int] = ..., backoff_ms: _Optional[_Iterable[int]] = ..., duplicate_window_ms: _Optional[int] = ..., max_age_s: _Optional[int] = ...) -> None: ...

class Subject(_message.Message):
    __slots__ = ("operation", "pattern", "queue_group", "timeout_ms", "durability", "reply_event")
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    PATTERN_FIELD_NUMBER: _ClassVar[int]
    QUEUE_GROUP_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    DURABILITY_FIELD_NUMBER: _ClassVar[int]
    REPLY_EVENT_FIELD_NUMBER: _ClassVar[int]
    operation: str
    pattern: Pattern
    queue_group: str
    timeout_ms: int
    durability: Durability
    reply_event: str
    def __init__(self, operation: _Optional[str] = ..., pattern: _Optional[_Union[Pattern, str]] = ..., queue_group: _Optional[str] = ..., timeout_ms: _Optional[int] = ..., durability: _Optional[_Union[Durability, _Mapping]] = ..., reply_event: _Optional[str] = ...) -> None: ...

class FieldRules(_message.Message):
    __slots__ = ("required", "min_len", "max_len", "pattern", "gte", "lte", "min_items", "max_items", "defined_only", "generated_id")
    REQUIRED_FIELD_NUMBER: _ClassVar[int]
    MIN_LEN_FIELD_NUMBER: _ClassVar[int]
    MAX_LEN_FIELD_NUMBER: _ClassVar[int]
    PATTERN_FIELD_NUMBER: _ClassVar[int]
    GTE_FIELD_NUMBER: _ClassVar[int]
    LTE_FIELD_NUMBER: _ClassVar[int]
    MIN_ITEMS_FIELD_NUMBER: _ClassVar[int]
    MAX_ITEMS_FIELD_NUMBER: _ClassVar[int]
    DEFINED_ONLY_FIELD_NUMBER: _ClassVar[int]
    GENERATED_ID_FIELD_NUMBER: _ClassVar[int]
    required: bool
    min_len: int
    max_len: int
    pattern: str
    gte: float
    lte: float
    min_items: int
    max_items: int
    defined_only: bool
    generated_id: bool
    def __init__(self, required: _Optional[bool] = ..., min_len: _Optional[int] = ..., max_len: _Optional[int] = ..., pattern: _Optional[str] = ..., gte: _Optional[float] = ..., lte: _Optional[float] = ..., min_items: _Optional[int] = ..., max_items: _Optional[int] = ..., defined_only: _Optional[bool] = ..., generated_id: _Optional[bool] = ...) -> None: ...

class Contract(_message.Message):
    __slots__ = ("minor", "compatibility")
    MINOR_FIELD_NUMBER: _ClassVar[int]
    COMPATIBILITY_FIELD_NUMBER: _ClassVar[int]
    minor: int
    compatibility: Compatibility
    def __init__(self, minor: _Optional[int] = ..., compatibility: _Optional[_Union[Compatibility, str]] = ...) -> None: ...
