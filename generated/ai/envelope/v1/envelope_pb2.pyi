import datetime

from ai.options.v1 import options_pb2 as _options_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Envelope(_message.Message):
    __slots__ = ("id", "type", "schema_version", "tenant_id", "source", "time", "traceparent", "tracestate", "correlation_id", "deadline", "attributes", "data")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    TRACEPARENT_FIELD_NUMBER: _ClassVar[int]
    TRACESTATE_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    id: str
    type: str
    schema_version: str
    tenant_id: str
    source: str
    time: _timestamp_pb2.Timestamp
    traceparent: str
    tracestate: str
    correlation_id: str
    deadline: _timestamp_pb2.Timestamp
    attributes: _containers.ScalarMap[str, str]
    data: bytes
    def __init__(self, id: _Optional[str] = ..., type: _Optional[str] = ..., schema_version: _Optional[str] = ..., tenant_id: _Optional[str] = ..., source: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., traceparent: _Optional[str] = ..., tracestate: _Optional[str] = ..., correlation_id: _Optional[str] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., attributes: _Optional[_Mapping[str, str]] = ..., data: _Optional[bytes] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ("code", "message", "violations", "retryable", "retry_after")
    class Code(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        CODE_UNSPECIFIED: _ClassVar[Error.Code]
        CODE_INVALID_ARGUMENT: _ClassVar[Error.Code]
        CODE_UNAUTHENTICATED: _ClassVar[Error.Code]
        CODE_PERMISSION_DENIED: _ClassVar[Error.Code]
        CODE_NOT_FOUND: _ClassVar[Error.Code]
        CODE_DEADLINE_EXCEEDED: _ClassVar[Error.Code]
        CODE_RESOURCE_EXHAUSTED: _ClassVar[Error.Code]
        CODE_UNAVAILABLE: _ClassVar[Error.Code]
        CODE_INTERNAL: _ClassVar[Error.Code]
        CODE_UNIMPLEMENTED: _ClassVar[Error.Code]
        CODE_FAILED_PRECONDITION: _ClassVar[Error.Code]
        CODE_ALREADY_EXISTS: _ClassVar[Error.Code]
        CODE_CANCELLED: _ClassVar[Error.Code]
    CODE_UNSPECIFIED: Error.Code
    CODE_INVALID_ARGUMENT: Error.Code
    CODE_UNAUTHENTICATED: Error.Code
    CODE_PERMISSION_DENIED: Error.Code
    CODE_NOT_FOUND: Error.Code
    CODE_DEADLINE_EXCEEDED: Error.Code
    CODE_RESOURCE_EXHAUSTED: Error.Code
    CODE_UNAVAILABLE: Error.Code
    CODE_INTERNAL: Error.Code
    CODE_UNIMPLEMENTED: Error.Code
    CODE_FAILED_PRECONDITION: Error.Code
    CODE_ALREADY_EXISTS: Error.Code
    CODE_CANCELLED: Error.Code
    class FieldViolation(_message.Message):
        __slots__ = ("field", "rule", "description")
        FIELD_FIELD_NUMBER: _ClassVar[int]
        RULE_FIELD_NUMBER: _ClassVar[int]
        DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
        field: str
        rule: str
        description: str
        def __init__(self, field: _Optional[str] = ..., rule: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    RETRYABLE_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_FIELD_NUMBER: _ClassVar[int]
    code: Error.Code
    message: str
    violations: _containers.RepeatedCompositeFieldContainer[Error.FieldViolation]
    retryable: bool
    retry_after: _duration_pb2.Duration
    def __init__(self, code: _Optional[_Union[Error.Code, str]] = ..., message: _Optional[str] = ..., violations: _Optional[_Iterable[_Union[Error.FieldViolation, _Mapping]]] = ..., retryable: _Optional[bool] = ..., retry_after: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class StreamEnd(_message.Message):
    __slots__ = ("chunks",)
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    chunks: int
    def __init__(self, chunks: _Optional[int] = ...) -> None: ...

class DeadLetter(_message.Message):
    __slots__ = ("subject", "code", "reason", "attempts", "time", "data", "consumer")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    CONSUMER_FIELD_NUMBER: _ClassVar[int]
    subject: str
    code: Error.Code
    reason: str
    attempts: int
    time: _timestamp_pb2.Timestamp
    data: bytes
    consumer: str
    def __init__(self, subject: _Optional[str] = ..., code: _Optional[_Union[Error.Code, str]] = ..., reason: _Optional[str] = ..., attempts: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., data: _Optional[bytes] = ..., consumer: _Optional[str] = ...) -> None: ...
