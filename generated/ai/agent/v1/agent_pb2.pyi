import datetime

from ai.options.v1 import options_pb2 as _options_pb2
from ai.rag.v1 import rag_pb2 as _rag_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MessageKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MESSAGE_KIND_UNSPECIFIED: _ClassVar[MessageKind]
    MESSAGE_KIND_TEXT: _ClassVar[MessageKind]
    MESSAGE_KIND_COMMAND: _ClassVar[MessageKind]
    MESSAGE_KIND_EVENT: _ClassVar[MessageKind]

class TaskPriority(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_PRIORITY_UNSPECIFIED: _ClassVar[TaskPriority]
    TASK_PRIORITY_LOW: _ClassVar[TaskPriority]
    TASK_PRIORITY_NORMAL: _ClassVar[TaskPriority]
    TASK_PRIORITY_HIGH: _ClassVar[TaskPriority]
    TASK_PRIORITY_CRITICAL: _ClassVar[TaskPriority]

class TaskStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_STATUS_UNSPECIFIED: _ClassVar[TaskStatus]
    TASK_STATUS_SUCCEEDED: _ClassVar[TaskStatus]
    TASK_STATUS_FAILED: _ClassVar[TaskStatus]
    TASK_STATUS_CANCELLED: _ClassVar[TaskStatus]

class AgentState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AGENT_STATE_UNSPECIFIED: _ClassVar[AgentState]
    AGENT_STATE_STARTING: _ClassVar[AgentState]
    AGENT_STATE_IDLE: _ClassVar[AgentState]
    AGENT_STATE_BUSY: _ClassVar[AgentState]
    AGENT_STATE_DRAINING: _ClassVar[AgentState]
    AGENT_STATE_STOPPED: _ClassVar[AgentState]
    AGENT_STATE_AWAITING_APPROVAL: _ClassVar[AgentState]

class MemoryType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MEMORY_TYPE_UNSPECIFIED: _ClassVar[MemoryType]
    MEMORY_TYPE_SHORT_TERM: _ClassVar[MemoryType]
    MEMORY_TYPE_LONG_TERM: _ClassVar[MemoryType]
    MEMORY_TYPE_EPISODIC: _ClassVar[MemoryType]
    MEMORY_TYPE_SEMANTIC: _ClassVar[MemoryType]

class MemoryOrder(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MEMORY_ORDER_UNSPECIFIED: _ClassVar[MemoryOrder]
    MEMORY_ORDER_SIMILARITY: _ClassVar[MemoryOrder]
    MEMORY_ORDER_RECENCY: _ClassVar[MemoryOrder]

class RunState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RUN_STATE_UNSPECIFIED: _ClassVar[RunState]
    RUN_STATE_RUNNING: _ClassVar[RunState]
    RUN_STATE_AWAITING_APPROVAL: _ClassVar[RunState]
    RUN_STATE_SUCCEEDED: _ClassVar[RunState]
    RUN_STATE_FAILED: _ClassVar[RunState]
MESSAGE_KIND_UNSPECIFIED: MessageKind
MESSAGE_KIND_TEXT: MessageKind
MESSAGE_KIND_COMMAND: MessageKind
MESSAGE_KIND_EVENT: MessageKind
TASK_PRIORITY_UNSPECIFIED: TaskPriority
TASK_PRIORITY_LOW: TaskPriority
TASK_PRIORITY_NORMAL: TaskPriority
TASK_PRIORITY_HIGH: TaskPriority
TASK_PRIORITY_CRITICAL: TaskPriority
TASK_STATUS_UNSPECIFIED: TaskStatus
TASK_STATUS_SUCCEEDED: TaskStatus
TASK_STATUS_FAILED: TaskStatus
TASK_STATUS_CANCELLED: TaskStatus
AGENT_STATE_UNSPECIFIED: AgentState
AGENT_STATE_STARTING: AgentState
AGENT_STATE_IDLE: AgentState
AGENT_STATE_BUSY: AgentState
AGENT_STATE_DRAINING: AgentState
AGENT_STATE_STOPPED: AgentState
AGENT_STATE_AWAITING_APPROVAL: AgentState
MEMORY_TYPE_UNSPECIFIED: MemoryType
MEMORY_TYPE_SHORT_TERM: MemoryType
MEMORY_TYPE_LONG_TERM: MemoryType
MEMORY_TYPE_EPISODIC: MemoryType
MEMORY_TYPE_SEMANTIC: MemoryType
MEMORY_ORDER_UNSPECIFIED: MemoryOrder
MEMORY_ORDER_SIMILARITY: MemoryOrder
MEMORY_ORDER_RECENCY: MemoryOrder
RUN_STATE_UNSPECIFIED: RunState
RUN_STATE_RUNNING: RunState
RUN_STATE_AWAITING_APPROVAL: RunState
RUN_STATE_SUCCEEDED: RunState
RUN_STATE_FAILED: RunState

class AgentMessage(_message.Message):
    __slots__ = ("message_id", "source_agent_id", "target_agent_id", "content", "kind", "metadata", "session_id", "in_reply_to")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    IN_REPLY_TO_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    source_agent_id: str
    target_agent_id: str
    content: str
    kind: MessageKind
    metadata: _containers.ScalarMap[str, str]
    session_id: str
    in_reply_to: str
    def __init__(self, message_id: _Optional[str] = ..., source_agent_id: _Optional[str] = ..., target_agent_id: _Optional[str] = ..., content: _Optional[str] = ..., kind: _Optional[_Union[MessageKind, str]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., session_id: _Optional[str] = ..., in_reply_to: _Optional[str] = ...) -> None: ...

class AgentTask(_message.Message):
    __slots__ = ("task_id", "agent_id", "task_type", "parameters", "priority")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_TYPE_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    agent_id: str
    task_type: str
    parameters: _struct_pb2.Struct
    priority: TaskPriority
    def __init__(self, task_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., task_type: _Optional[str] = ..., parameters: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., priority: _Optional[_Union[TaskPriority, str]] = ...) -> None: ...

class TaskResult(_message.Message):
    __slots__ = ("task_id", "agent_id", "status", "output", "error", "duration")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    agent_id: str
    status: TaskStatus
    output: _struct_pb2.Struct
    error: str
    duration: _duration_pb2.Duration
    def __init__(self, task_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., status: _Optional[_Union[TaskStatus, str]] = ..., output: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., error: _Optional[str] = ..., duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class AgentStatus(_message.Message):
    __slots__ = ("agent_id", "state", "active_tasks", "capabilities", "awaiting_approval")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_TASKS_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    AWAITING_APPROVAL_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    state: AgentState
    active_tasks: int
    capabilities: _containers.RepeatedScalarFieldContainer[str]
    awaiting_approval: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, agent_id: _Optional[str] = ..., state: _Optional[_Union[AgentState, str]] = ..., active_tasks: _Optional[int] = ..., capabilities: _Optional[_Iterable[str]] = ..., awaiting_approval: _Optional[_Iterable[str]] = ...) -> None: ...

class MemoryItem(_message.Message):
    __slots__ = ("agent_id", "memory_id", "memory_type", "content", "metadata", "created_at")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    MEMORY_ID_FIELD_NUMBER: _ClassVar[int]
    MEMORY_TYPE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    memory_id: str
    memory_type: MemoryType
    content: str
    metadata: _containers.ScalarMap[str, str]
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, agent_id: _Optional[str] = ..., memory_id: _Optional[str] = ..., memory_type: _Optional[_Union[MemoryType, str]] = ..., content: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class MemoryQuery(_message.Message):
    __slots__ = ("query_id", "agent_id", "text", "order", "memory_type", "limit")
    QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    MEMORY_TYPE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    query_id: str
    agent_id: str
    text: str
    order: MemoryOrder
    memory_type: MemoryType
    limit: int
    def __init__(self, query_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., text: _Optional[str] = ..., order: _Optional[_Union[MemoryOrder, str]] = ..., memory_type: _Optional[_Union[MemoryType, str]] = ..., limit: _Optional[int] = ...) -> None: ...

class MemoryMatch(_message.Message):
    __slots__ = ("item", "similarity")
    ITEM_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    item: MemoryItem
    similarity: float
    def __init__(self, item: _Optional[_Union[MemoryItem, _Mapping]] = ..., similarity: _Optional[float] = ...) -> None: ...

class MemoryRecall(_message.Message):
    __slots__ = ("query_id", "matches")
    QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    MATCHES_FIELD_NUMBER: _ClassVar[int]
    query_id: str
    matches: _containers.RepeatedCompositeFieldContainer[MemoryMatch]
    def __init__(self, query_id: _Optional[str] = ..., matches: _Optional[_Iterable[_Union[MemoryMatch, _Mapping]]] = ...) -> None: ...

class ToolExecutionRequest(_message.Message):
    __slots__ = ("call_id", "agent_id", "tool_name", "arguments", "idempotency_key")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    TOOL_NAME_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    agent_id: str
    tool_name: str
    arguments: _struct_pb2.Struct
    idempotency_key: str
    def __init__(self, call_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., tool_name: _Optional[str] = ..., arguments: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class ToolExecutionResult(_message.Message):
    __slots__ = ("call_id", "tool_name", "success", "output", "error", "duration")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    TOOL_NAME_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    tool_name: str
    success: bool
    output: _struct_pb2.Struct
    error: str
    duration: _duration_pb2.Duration
    def __init__(self, call_id: _Optional[str] = ..., tool_name: _Optional[str] = ..., success: _Optional[bool] = ..., output: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., error: _Optional[str] = ..., duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class Session(_message.Message):
    __slots__ = ("session_id", "user_id", "agent_id", "memory_scope", "turns", "created_at", "updated_at")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    MEMORY_SCOPE_FIELD_NUMBER: _ClassVar[int]
    TURNS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    user_id: str
    agent_id: str
    memory_scope: str
    turns: int
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, session_id: _Optional[str] = ..., user_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., memory_scope: _Optional[str] = ..., turns: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class TurnToolCall(_message.Message):
    __slots__ = ("call_id", "tool_name", "arguments", "success")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    TOOL_NAME_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    tool_name: str
    arguments: _struct_pb2.Struct
    success: bool
    def __init__(self, call_id: _Optional[str] = ..., tool_name: _Optional[str] = ..., arguments: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., success: _Optional[bool] = ...) -> None: ...

class SessionTurn(_message.Message):
    __slots__ = ("number", "run_id", "question", "standalone_question", "answer", "status", "tool_calls", "started_at", "finished_at")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    QUESTION_FIELD_NUMBER: _ClassVar[int]
    STANDALONE_QUESTION_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALLS_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    number: int
    run_id: str
    question: str
    standalone_question: str
    answer: str
    status: _rag_pb2.AnswerStatus
    tool_calls: _containers.RepeatedCompositeFieldContainer[TurnToolCall]
    started_at: _timestamp_pb2.Timestamp
    finished_at: _timestamp_pb2.Timestamp
    def __init__(self, number: _Optional[int] = ..., run_id: _Optional[str] = ..., question: _Optional[str] = ..., standalone_question: _Optional[str] = ..., answer: _Optional[str] = ..., status: _Optional[_Union[_rag_pb2.AnswerStatus, str]] = ..., tool_calls: _Optional[_Iterable[_Union[TurnToolCall, _Mapping]]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SessionCreateRequest(_message.Message):
    __slots__ = ("session_id", "user_id", "agent_id", "memory_scope")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    MEMORY_SCOPE_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    user_id: str
    agent_id: str
    memory_scope: str
    def __init__(self, session_id: _Optional[str] = ..., user_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., memory_scope: _Optional[str] = ...) -> None: ...

class SessionListRequest(_message.Message):
    __slots__ = ("request_id", "user_id", "limit")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    user_id: str
    limit: int
    def __init__(self, request_id: _Optional[str] = ..., user_id: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class SessionList(_message.Message):
    __slots__ = ("sessions",)
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    sessions: _containers.RepeatedCompositeFieldContainer[Session]
    def __init__(self, sessions: _Optional[_Iterable[_Union[Session, _Mapping]]] = ...) -> None: ...

class SessionRef(_message.Message):
    __slots__ = ("session_id", "user_id")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    user_id: str
    def __init__(self, session_id: _Optional[str] = ..., user_id: _Optional[str] = ...) -> None: ...

class SessionDetail(_message.Message):
    __slots__ = ("session", "turns")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    TURNS_FIELD_NUMBER: _ClassVar[int]
    session: Session
    turns: _containers.RepeatedCompositeFieldContainer[SessionTurn]
    def __init__(self, session: _Optional[_Union[Session, _Mapping]] = ..., turns: _Optional[_Iterable[_Union[SessionTurn, _Mapping]]] = ...) -> None: ...

class SessionDeleted(_message.Message):
    __slots__ = ("session_id", "deleted")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    deleted: bool
    def __init__(self, session_id: _Optional[str] = ..., deleted: _Optional[bool] = ...) -> None: ...

class AgentRunRequest(_message.Message):
    __slots__ = ("run_id", "question", "agent_id", "session_id", "user_id")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    QUESTION_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    question: str
    agent_id: str
    session_id: str
    user_id: str
    def __init__(self, run_id: _Optional[str] = ..., question: _Optional[str] = ..., agent_id: _Optional[str] = ..., session_id: _Optional[str] = ..., user_id: _Optional[str] = ...) -> None: ...

class PendingApproval(_message.Message):
    __slots__ = ("call_id", "tool_name", "arguments")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    TOOL_NAME_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    tool_name: str
    arguments: _struct_pb2.Struct
    def __init__(self, call_id: _Optional[str] = ..., tool_name: _Optional[str] = ..., arguments: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class AgentRunReply(_message.Message):
    __slots__ = ("run_id", "state", "answer", "sources", "status", "tokens", "cost", "model", "rounds", "session_id", "turn", "pending", "error", "attempts")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ROUNDS_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TURN_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    state: RunState
    answer: str
    sources: _containers.RepeatedCompositeFieldContainer[_rag_pb2.Source]
    status: _rag_pb2.AnswerStatus
    tokens: int
    cost: float
    model: str
    rounds: int
    session_id: str
    turn: int
    pending: PendingApproval
    error: str
    attempts: int
    def __init__(self, run_id: _Optional[str] = ..., state: _Optional[_Union[RunState, str]] = ..., answer: _Optional[str] = ..., sources: _Optional[_Iterable[_Union[_rag_pb2.Source, _Mapping]]] = ..., status: _Optional[_Union[_rag_pb2.AnswerStatus, str]] = ..., tokens: _Optional[int] = ..., cost: _Optional[float] = ..., model: _Optional[str] = ..., rounds: _Optional[int] = ..., session_id: _Optional[str] = ..., turn: _Optional[int] = ..., pending: _Optional[_Union[PendingApproval, _Mapping]] = ..., error: _Optional[str] = ..., attempts: _Optional[int] = ...) -> None: ...

class AgentRunChunk(_message.Message):
    __slots__ = ("run_id", "index", "delta", "round", "reply")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    REPLY_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    index: int
    delta: str
    round: int
    reply: AgentRunReply
    def __init__(self, run_id: _Optional[str] = ..., index: _Optional[int] = ..., delta: _Optional[str] = ..., round: _Optional[int] = ..., reply: _Optional[_Union[AgentRunReply, _Mapping]] = ...) -> None: ...

class ApprovalDecision(_message.Message):
    __slots__ = ("run_id", "approve", "reason", "approver")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    APPROVE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    APPROVER_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    approve: bool
    reason: str
    approver: str
    def __init__(self, run_id: _Optional[str] = ..., approve: _Optional[bool] = ..., reason: _Optional[str] = ..., approver: _Optional[str] = ...) -> None: ...
