import datetime

from ai.gateway.v1 import gateway_pb2 as _gateway_pb2
from ai.options.v1 import options_pb2 as _options_pb2
from ai.rag.v1 import rag_pb2 as _rag_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class QueryMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    QUERY_MODE_UNSPECIFIED: _ClassVar[QueryMode]
    QUERY_MODE_AUTO: _ClassVar[QueryMode]
    QUERY_MODE_RAG: _ClassVar[QueryMode]
    QUERY_MODE_LLM: _ClassVar[QueryMode]
    QUERY_MODE_AGENT: _ClassVar[QueryMode]
QUERY_MODE_UNSPECIFIED: QueryMode
QUERY_MODE_AUTO: QueryMode
QUERY_MODE_RAG: QueryMode
QUERY_MODE_LLM: QueryMode
QUERY_MODE_AGENT: QueryMode

class ApiQuery(_message.Message):
    __slots__ = ("query_id", "query", "user_id", "mode", "session_id")
    QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    query_id: str
    query: str
    user_id: str
    mode: QueryMode
    session_id: str
    def __init__(self, query_id: _Optional[str] = ..., query: _Optional[str] = ..., user_id: _Optional[str] = ..., mode: _Optional[_Union[QueryMode, str]] = ..., session_id: _Optional[str] = ...) -> None: ...

class ApiAnswer(_message.Message):
    __slots__ = ("query_id", "answer", "sources", "tokens", "cost", "mode", "duration", "status", "grounded", "model", "run_id", "session_id", "turn", "awaiting_approval")
    QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    GROUNDED_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TURN_FIELD_NUMBER: _ClassVar[int]
    AWAITING_APPROVAL_FIELD_NUMBER: _ClassVar[int]
    query_id: str
    answer: str
    sources: _containers.RepeatedCompositeFieldContainer[_rag_pb2.Source]
    tokens: _gateway_pb2.TokenUsage
    cost: float
    mode: QueryMode
    duration: _duration_pb2.Duration
    status: _rag_pb2.AnswerStatus
    grounded: bool
    model: str
    run_id: str
    session_id: str
    turn: int
    awaiting_approval: bool
    def __init__(self, query_id: _Optional[str] = ..., answer: _Optional[str] = ..., sources: _Optional[_Iterable[_Union[_rag_pb2.Source, _Mapping]]] = ..., tokens: _Optional[_Union[_gateway_pb2.TokenUsage, _Mapping]] = ..., cost: _Optional[float] = ..., mode: _Optional[_Union[QueryMode, str]] = ..., duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., status: _Optional[_Union[_rag_pb2.AnswerStatus, str]] = ..., grounded: _Optional[bool] = ..., model: _Optional[str] = ..., run_id: _Optional[str] = ..., session_id: _Optional[str] = ..., turn: _Optional[int] = ..., awaiting_approval: _Optional[bool] = ...) -> None: ...
