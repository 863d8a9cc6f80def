import datetime

from ai.gateway.v1 import gateway_pb2 as _gateway_pb2
from ai.options.v1 import options_pb2 as _options_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class IngestState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INGEST_STATE_UNSPECIFIED: _ClassVar[IngestState]
    INGEST_STATE_QUEUED: _ClassVar[IngestState]
    INGEST_STATE_CHUNKING: _ClassVar[IngestState]
    INGEST_STATE_EMBEDDING: _ClassVar[IngestState]
    INGEST_STATE_INDEXED: _ClassVar[IngestState]
    INGEST_STATE_FAILED: _ClassVar[IngestState]

class AnswerStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ANSWER_STATUS_UNSPECIFIED: _ClassVar[AnswerStatus]
    ANSWER_STATUS_ANSWERED: _ClassVar[AnswerStatus]
    ANSWER_STATUS_NOT_FOUND: _ClassVar[AnswerStatus]
INGEST_STATE_UNSPECIFIED: IngestState
INGEST_STATE_QUEUED: IngestState
INGEST_STATE_CHUNKING: IngestState
INGEST_STATE_EMBEDDING: IngestState
INGEST_STATE_INDEXED: IngestState
INGEST_STATE_FAILED: IngestState
ANSWER_STATUS_UNSPECIFIED: AnswerStatus
ANSWER_STATUS_ANSWERED: AnswerStatus
ANSWER_STATUS_NOT_FOUND: AnswerStatus

class Chunk(_message.Message):
    __slots__ = ("chunk_id", "content", "embedding", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CHUNK_ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    chunk_id: str
    content: str
    embedding: _containers.RepeatedScalarFieldContainer[float]
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, chunk_id: _Optional[str] = ..., content: _Optional[str] = ..., embedding: _Optional[_Iterable[float]] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class RagDocument(_message.Message):
    __slots__ = ("document_id", "content", "metadata", "chunks", "source_uri", "data", "content_type", "content_ref")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_URI_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_REF_FIELD_NUMBER: _ClassVar[int]
    document_id: str
    content: str
    metadata: _containers.ScalarMap[str, str]
    chunks: _containers.RepeatedCompositeFieldContainer[Chunk]
    source_uri: str
    data: bytes
    content_type: str
    content_ref: ObjectRef
    def __init__(self, document_id: _Optional[str] = ..., content: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., chunks: _Optional[_Iterable[_Union[Chunk, _Mapping]]] = ..., source_uri: _Optional[str] = ..., data: _Optional[bytes] = ..., content_type: _Optional[str] = ..., content_ref: _Optional[_Union[ObjectRef, _Mapping]] = ...) -> None: ...

class ObjectRef(_message.Message):
    __slots__ = ("bucket", "name", "sha256", "size")
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    bucket: str
    name: str
    sha256: str
    size: int
    def __init__(self, bucket: _Optional[str] = ..., name: _Optional[str] = ..., sha256: _Optional[str] = ..., size: _Optional[int] = ...) -> None: ...

class IngestStatus(_message.Message):
    __slots__ = ("document_id", "state", "chunks", "error", "chunks_embedded", "unchanged", "content_hash")
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_EMBEDDED_FIELD_NUMBER: _ClassVar[int]
    UNCHANGED_FIELD_NUMBER: _ClassVar[int]
    CONTENT_HASH_FIELD_NUMBER: _ClassVar[int]
    document_id: str
    state: IngestState
    chunks: int
    error: str
    chunks_embedded: int
    unchanged: bool
    content_hash: str
    def __init__(self, document_id: _Optional[str] = ..., state: _Optional[_Union[IngestState, str]] = ..., chunks: _Optional[int] = ..., error: _Optional[str] = ..., chunks_embedded: _Optional[int] = ..., unchanged: _Optional[bool] = ..., content_hash: _Optional[str] = ...) -> None: ...

class QueryParameters(_message.Message):
    __slots__ = ("top_k", "similarity_threshold", "filter", "min_relative_score", "min_support")
    class FilterEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    MIN_RELATIVE_SCORE_FIELD_NUMBER: _ClassVar[int]
    MIN_SUPPORT_FIELD_NUMBER: _ClassVar[int]
    top_k: int
    similarity_threshold: float
    filter: _containers.ScalarMap[str, str]
    min_relative_score: float
    min_support: float
    def __init__(self, top_k: _Optional[int] = ..., similarity_threshold: _Optional[float] = ..., filter: _Optional[_Mapping[str, str]] = ..., min_relative_score: _Optional[float] = ..., min_support: _Optional[float] = ...) -> None: ...

class RagQuery(_message.Message):
    __slots__ = ("query_id", "query", "parameters", "model")
    QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    query_id: str
    query: str
    parameters: QueryParameters
    model: str
    def __init__(self, query_id: _Optional[str] = ..., query: _Optional[str] = ..., parameters: _Optional[_Union[QueryParameters, _Mapping]] = ..., model: _Optional[str] = ...) -> None: ...

class Source(_message.Message):
    __slots__ = ("document_id", "chunk_id", "score", "snippet", "source_uri", "similarity")
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    CHUNK_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    SNIPPET_FIELD_NUMBER: _ClassVar[int]
    SOURCE_URI_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    document_id: str
    chunk_id: str
    score: float
    snippet: str
    source_uri: str
    similarity: float
    def __init__(self, document_id: _Optional[str] = ..., chunk_id: _Optional[str] = ..., score: _Optional[float] = ..., snippet: _Optional[str] = ..., source_uri: _Optional[str] = ..., similarity: _Optional[float] = ...) -> None: ...

class QueryTimings(_message.Message):
    __slots__ = ("embedding", "retrieval", "prompt", "generation", "grounding")
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    RETRIEVAL_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    GROUNDING_FIELD_NUMBER: _ClassVar[int]
    embedding: _duration_pb2.Duration
    retrieval: _duration_pb2.Duration
    prompt: _duration_pb2.Duration
    generation: _duration_pb2.Duration
    grounding: _duration_pb2.Duration
    def __init__(self, embedding: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., retrieval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., prompt: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., generation: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., grounding: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class RagResult(_message.Message):
    __slots__ = ("query_id", "answer", "sources", "tokens", "cost", "duration", "grounded", "unsupported_sentences", "timings", "model", "status", "support", "support_threshold")
    QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    GROUNDED_FIELD_NUMBER: _ClassVar[int]
    UNSUPPORTED_SENTENCES_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SUPPORT_FIELD_NUMBER: _ClassVar[int]
    SUPPORT_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    query_id: str
    answer: str
    sources: _containers.RepeatedCompositeFieldContainer[Source]
    tokens: _gateway_pb2.TokenUsage
    cost: float
    duration: _duration_pb2.Duration
    grounded: bool
    unsupported_sentences: _containers.RepeatedScalarFieldContainer[str]
    timings: QueryTimings
    model: str
    status: AnswerStatus
    support: float
    support_threshold: float
    def __init__(self, query_id: _Optional[str] = ..., answer: _Optional[str] = ..., sources: _Optional[_Iterable[_Union[Source, _Mapping]]] = ..., tokens: _Optional[_Union[_gateway_pb2.TokenUsage, _Mapping]] = ..., cost: _Optional[float] = ..., duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., grounded: _Optional[bool] = ..., unsupported_sentences: _Optional[_Iterable[str]] = ..., timings: _Optional[_Union[QueryTimings, _Mapping]] = ..., model: _Optional[str] = ..., status: _Optional[_Union[AnswerStatus, str]] = ..., support: _Optional[float] = ..., support_threshold: _Optional[float] = ...) -> None: ...
