import datetime

from ai.gateway.v1 import gateway_pb2 as _gateway_pb2
from ai.options.v1 import options_pb2 as _options_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class OperationType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OPERATION_TYPE_UNSPECIFIED: _ClassVar[OperationType]
    OPERATION_TYPE_COMPLETION: _ClassVar[OperationType]
    OPERATION_TYPE_CHAT: _ClassVar[OperationType]
    OPERATION_TYPE_EMBEDDING: _ClassVar[OperationType]
    OPERATION_TYPE_RAG_QUERY: _ClassVar[OperationType]
    OPERATION_TYPE_AGENT_TASK: _ClassVar[OperationType]

class OperationStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OPERATION_STATUS_UNSPECIFIED: _ClassVar[OperationStatus]
    OPERATION_STATUS_SUCCESS: _ClassVar[OperationStatus]
    OPERATION_STATUS_ERROR: _ClassVar[OperationStatus]
    OPERATION_STATUS_CACHED: _ClassVar[OperationStatus]
    OPERATION_STATUS_RATE_LIMITED: _ClassVar[OperationStatus]
    OPERATION_STATUS_BUDGET_EXCEEDED: _ClassVar[OperationStatus]
OPERATION_TYPE_UNSPECIFIED: OperationType
OPERATION_TYPE_COMPLETION: OperationType
OPERATION_TYPE_CHAT: OperationType
OPERATION_TYPE_EMBEDDING: OperationType
OPERATION_TYPE_RAG_QUERY: OperationType
OPERATION_TYPE_AGENT_TASK: OperationType
OPERATION_STATUS_UNSPECIFIED: OperationStatus
OPERATION_STATUS_SUCCESS: OperationStatus
OPERATION_STATUS_ERROR: OperationStatus
OPERATION_STATUS_CACHED: OperationStatus
OPERATION_STATUS_RATE_LIMITED: OperationStatus
OPERATION_STATUS_BUDGET_EXCEEDED: OperationStatus

class LlmOperation(_message.Message):
    __slots__ = ("operation_id", "operation_type", "model", "tokens", "cost", "latency_ms", "status", "request_id", "occurred_at")
    OPERATION_ID_FIELD_NUMBER: _ClassVar[int]
    OPERATION_TYPE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    operation_id: str
    operation_type: OperationType
    model: str
    tokens: _gateway_pb2.TokenUsage
    cost: float
    latency_ms: float
    status: OperationStatus
    request_id: str
    occurred_at: _timestamp_pb2.Timestamp
    def __init__(self, operation_id: _Optional[str] = ..., operation_type: _Optional[_Union[OperationType, str]] = ..., model: _Optional[str] = ..., tokens: _Optional[_Union[_gateway_pb2.TokenUsage, _Mapping]] = ..., cost: _Optional[float] = ..., latency_ms: _Optional[float] = ..., status: _Optional[_Union[OperationStatus, str]] = ..., request_id: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class UsageReportRequest(_message.Message):
    __slots__ = ("report_id", "start", "end", "models")
    REPORT_ID_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    report_id: str
    start: _timestamp_pb2.Timestamp
    end: _timestamp_pb2.Timestamp
    models: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, report_id: _Optional[str] = ..., start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., models: _Optional[_Iterable[str]] = ...) -> None: ...

class ModelUsage(_message.Message):
    __slots__ = ("model", "operations", "prompt_tokens", "completion_tokens", "cost", "errors", "total_tokens", "latency_p50", "latency_p95", "cache_hits", "cache_hit_rate")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    OPERATIONS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P50_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P95_FIELD_NUMBER: _ClassVar[int]
    CACHE_HITS_FIELD_NUMBER: _ClassVar[int]
    CACHE_HIT_RATE_FIELD_NUMBER: _ClassVar[int]
    model: str
    operations: int
    prompt_tokens: int
    completion_tokens: int
    cost: float
    errors: int
    total_tokens: int
    latency_p50: _duration_pb2.Duration
    latency_p95: _duration_pb2.Duration
    cache_hits: int
    cache_hit_rate: float
    def __init__(self, model: _Optional[str] = ..., operations: _Optional[int] = ..., prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., cost: _Optional[float] = ..., errors: _Optional[int] = ..., total_tokens: _Optional[int] = ..., latency_p50: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., latency_p95: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., cache_hits: _Optional[int] = ..., cache_hit_rate: _Optional[float] = ...) -> None: ...

class UsageReport(_message.Message):
    __slots__ = ("report_id", "start", "end", "models", "total_cost", "latency_p95", "total_operations", "total_tokens", "latency_p50", "cache_hit_rate")
    REPORT_ID_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_COST_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P95_FIELD_NUMBER: _ClassVar[int]
    TOTAL_OPERATIONS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P50_FIELD_NUMBER: _ClassVar[int]
    CACHE_HIT_RATE_FIELD_NUMBER: _ClassVar[int]
    report_id: str
    start: _timestamp_pb2.Timestamp
    end: _timestamp_pb2.Timestamp
    models: _containers.RepeatedCompositeFieldContainer[ModelUsage]
    total_cost: float
    latency_p95: _duration_pb2.Duration
    total_operations: int
    total_tokens: int
    latency_p50: _duration_pb2.Duration
    cache_hit_rate: float
    def __init__(self, report_id: _Optional[str] = ..., start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., models: _Optional[_Iterable[_Union[ModelUsage, _Mapping]]] = ..., total_cost: _Optional[float] = ..., latency_p95: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., total_operations: _Optional[int] = ..., total_tokens: _Optional[int] = ..., latency_p50: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., cache_hit_rate: _Optional[float] = ...) -> None: ...
