from ai.gateway.v1 import gateway_pb2 as _gateway_pb2
from ai.options.v1 import options_pb2 as _options_pb2
from ai.rag.v1 import rag_pb2 as _rag_pb2
from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Ticket(_message.Message):
    __slots__ = ("ticket_id", "subject", "body")
    TICKET_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    ticket_id: str
    subject: str
    body: str
    def __init__(self, ticket_id: _Optional[str] = ..., subject: _Optional[str] = ..., body: _Optional[str] = ...) -> None: ...

class TriagedTicket(_message.Message):
    __slots__ = ("ticket_id", "category", "confidence", "model_id", "model_version", "needs_review", "sources", "draft_reply", "answer_model", "tokens", "cost")
    TICKET_ID_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    NEEDS_REVIEW_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    DRAFT_REPLY_FIELD_NUMBER: _ClassVar[int]
    ANSWER_MODEL_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    ticket_id: str
    category: str
    confidence: float
    model_id: str
    model_version: str
    needs_review: bool
    sources: _containers.RepeatedCompositeFieldContainer[_rag_pb2.Source]
    draft_reply: str
    answer_model: str
    tokens: _gateway_pb2.TokenUsage
    cost: float
    def __init__(self, ticket_id: _Optional[str] = ..., category: _Optional[str] = ..., confidence: _Optional[float] = ..., model_id: _Optional[str] = ..., model_version: _Optional[str] = ..., needs_review: _Optional[bool] = ..., sources: _Optional[_Iterable[_Union[_rag_pb2.Source, _Mapping]]] = ..., draft_reply: _Optional[str] = ..., answer_model: _Optional[str] = ..., tokens: _Optional[_Union[_gateway_pb2.TokenUsage, _Mapping]] = ..., cost: _Optional[float] = ...) -> None: ...
