from ai.options.v1 import options_pb2 as _options_pb2
from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class PromptTemplate(_message.Message):
    __slots__ = ("template_id", "template", "variables", "version")
    class VariablesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TEMPLATE_ID_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    VARIABLES_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    template_id: str
    template: str
    variables: _containers.ScalarMap[str, str]
    version: str
    def __init__(self, template_id: _Optional[str] = ..., template: _Optional[str] = ..., variables: _Optional[_Mapping[str, str]] = ..., version: _Optional[str] = ...) -> None: ...

class ContextRequest(_message.Message):
    __slots__ = ("request_id", "template_id", "template_version", "variables", "context_snippets", "max_tokens", "model")
    class VariablesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_ID_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_VERSION_FIELD_NUMBER: _ClassVar[int]
    VARIABLES_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_SNIPPETS_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    template_id: str
    template_version: str
    variables: _containers.ScalarMap[str, str]
    context_snippets: _containers.RepeatedScalarFieldContainer[str]
    max_tokens: int
    model: str
    def __init__(self, request_id: _Optional[str] = ..., template_id: _Optional[str] = ..., template_version: _Optional[str] = ..., variables: _Optional[_Mapping[str, str]] = ..., context_snippets: _Optional[_Iterable[str]] = ..., max_tokens: _Optional[int] = ..., model: _Optional[str] = ...) -> None: ...

class ContextResult(_message.Message):
    __slots__ = ("request_id", "prompt", "estimated_tokens", "truncated_snippets", "template_version", "model")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_SNIPPETS_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_VERSION_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    prompt: str
    estimated_tokens: int
    truncated_snippets: int
    template_version: str
    model: str
    def __init__(self, request_id: _Optional[str] = ..., prompt: _Optional[str] = ..., estimated_tokens: _Optional[int] = ..., truncated_snippets: _Optional[int] = ..., template_version: _Optional[str] = ..., model: _Optional[str] = ...) -> None: ...
