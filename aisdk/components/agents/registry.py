"""A typed tool registry: each tool's name, description and JSON-schema
parameters come from the function itself (its name, docstring and
annotated signature), so the schema the model sees cannot drift from the
code that runs.

    tools = ToolRegistry()

    @tools.tool
    async def convert(ctx: ToolContext, amount: float, currency: str = "EUR") -> dict[str, float]:
        "Convert an amount of US dollars to another currency."
"""

from __future__ import annotations

import inspect
import json
import re
import types
import typing
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ai.gateway.v1 import gateway_pb2
from google.protobuf import json_format, struct_pb2

if TYPE_CHECKING:
    from runtime.contract import Transport

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
_SCALARS: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}


class ToolError(ValueError):
    """A tool that cannot be registered, or arguments that do not fit it."""


@dataclass(frozen=True, slots=True)
class ToolContext:
    """What a tool may ask for besides its arguments: annotate a parameter
    with ToolContext and the executor passes it (it is not in the schema)."""

    bus: Transport
    tenant_id: str
    agent_id: str
    call_id: str
    # Same for the same call of the same run (see ToolExecutionRequest): a
    # tool with side effects elsewhere passes it on, so they happen once.
    idempotency_key: str = ""


def _schema(annotation: Any, where: str) -> dict[str, Any]:
    origin = typing.get_origin(annotation)
    if annotation in _SCALARS:
        return {"type": _SCALARS[annotation]}
    if origin is typing.Literal:
        return {"enum": list(typing.get_args(annotation))}
    if origin in (list, tuple, set, frozenset) or annotation in (list, tuple):
        args = typing.get_args(annotation)
        return {"type": "array", "items": _schema(args[0], where) if args else {}}
    if origin is dict or annotation is dict or origin is Mapping:
        return {"type": "object"}
    raise ToolError(f"{where}: type {annotation!r} has no JSON schema (use str, int, float, bool, "
                    "Literal, list or dict)")


def _optional(annotation: Any) -> tuple[Any, bool]:
    """X | None -> (X, True)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(annotation)) == 2:
            return args[0], True
    return annotation, False


def _description(function: Callable[..., Any]) -> str:
    doc = inspect.getdoc(function) or ""
    return doc.split("\n\n")[0].replace("\n", " ").strip()


def _check(value: Any, schema: Mapping[str, Any], name: str) -> None:
    kind = schema.get("type")
    ok = {
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool)
        or isinstance(v, float) and v.is_integer(),
        "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "array": lambda v: isinstance(v, list),
        "object": lambda v: isinstance(v, dict),
    }
    if kind in ok and not ok[kind](value):
        raise ToolError(f"argument {name!r} must be of type {kind}, not {type(value).__name__}")
    if "enum" in schema and value not in schema["enum"]:
        raise ToolError(f"argument {name!r} must be one of {schema['enum']}")


class Tool:
    """One registered function and the schema derived from it."""

    def __init__(self, function: Callable[..., Any], *, name: str | None = None,
                 description: str | None = None, needs_approval: bool = False) -> None:
        self.function = function
        # A durable run pauses before calling it until a person approves.
        self.needs_approval = needs_approval
        self.name = name or function.__name__
        if _NAME.fullmatch(self.name) is None:
            raise ToolError(f"tool name {self.name!r} must be 1-64 letters, digits, '_' or '-', "
                            "not starting with a digit")
        self.description = description if description is not None else _description(function)
        hints = typing.get_type_hints(function)
        self._context: str | None = None
        self._integers: set[str] = set()
        properties: dict[str, Any] = {}
        required: list[str] = []
        for p in inspect.signature(function).parameters.values():
            where = f"tool {self.name!r}, parameter {p.name!r}"
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise ToolError(f"{where}: *args and **kwargs have no schema")
            if p.name not in hints:
                raise ToolError(f"{where} has no type annotation")
            if hints[p.name] is ToolContext:
                self._context = p.name
                continue
            annotation, optional = _optional(hints[p.name])
            properties[p.name] = _schema(annotation, where)
            if annotation is int:
                self._integers.add(p.name)
            if p.default is p.empty and not optional:
                required.append(p.name)
        self.parameters: dict[str, Any] = {"type": "object", "properties": properties, "required": required,
                                           "additionalProperties": False}

    def definition(self) -> gateway_pb2.ToolDefinition:
        schema = struct_pb2.Struct()
        schema.update(self.parameters)
        return gateway_pb2.ToolDefinition(name=self.name, description=self.description, parameters=schema)

    def arguments(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """The arguments checked against the schema; ToolError names the first misfit."""
        properties: dict[str, Any] = self.parameters["properties"]
        unknown = sorted(set(arguments) - set(properties))
        if unknown:
            raise ToolError(f"unknown argument(s) {', '.join(unknown)} for tool {self.name!r}; "
                            f"it takes {', '.join(properties) or 'none'}")
        missing = [n for n in self.parameters["required"] if n not in arguments]
        if missing:
            raise ToolError(f"missing argument(s) {', '.join(missing)} for tool {self.name!r}")
        out = {}
        for name, value in arguments.items():
            _check(value, properties[name], name)
            # Struct carries every number as a double.
            out[name] = int(value) if name in self._integers else value
        return out

    async def __call__(self, ctx: ToolContext, arguments: Mapping[str, Any]) -> Any:
        kwargs = self.arguments(arguments)
        if self._context is not None:
            kwargs[self._context] = ctx
        result = self.function(**kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result


def to_struct(value: Any) -> struct_pb2.Struct:
    """A tool's return value as the result's output: a dict as it is,
    anything else under "result". Values JSON cannot hold become strings."""
    data = json.loads(json.dumps(value, default=str))
    out = struct_pb2.Struct()
    out.update(data if isinstance(data, dict) else {"result": data})
    return out


def from_struct(value: struct_pb2.Struct) -> dict[str, Any]:
    out: dict[str, Any] = json_format.MessageToDict(value)
    return out


class ToolRegistry:
    def __init__(self) -> None:
        self._tools: dict[str, Tool] = {}

    def add(self, function: Callable[..., Any] | Callable[..., Awaitable[Any]], *, name: str | None = None,
            description: str | None = None, needs_approval: bool = False) -> Tool:
        tool = Tool(function, name=name, description=description, needs_approval=needs_approval)
        if tool.name in self._tools:
            raise ToolError(f"a tool named {tool.name!r} is already registered")
        self._tools[tool.name] = tool
        return tool

    def tool(self, function: Callable[..., Any]) -> Callable[..., Any]:
        """Decorator: register the function under its own name."""
        self.add(function)
        return function

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def definitions(self, names: list[str] | None = None) -> list[gateway_pb2.ToolDefinition]:
        return [t.definition() for n, t in self._tools.items() if names is None or n in names]

    @property
    def names(self) -> list[str]:
        return list(self._tools)

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)
