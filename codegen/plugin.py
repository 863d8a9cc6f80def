"""The pure core: generate(request) -> response. No I/O here."""

from __future__ import annotations

from google.protobuf.compiler import plugin_pb2

from codegen.model import ContractError, build
from codegen.render import empty_init, render_bus, render_registry

REGISTRY_FILE = "ai/registry.py"


def generate(request: plugin_pb2.CodeGeneratorRequest) -> plugin_pb2.CodeGeneratorResponse:
    """Render every file to generate; contract errors go to response.error."""
    response = plugin_pb2.CodeGeneratorResponse(
        supported_features=plugin_pb2.CodeGeneratorResponse.FEATURE_PROTO3_OPTIONAL
    )
    try:
        model = build(request)
    except ContractError as e:
        response.error = str(e)
        return response
    files: dict[str, str] = {}
    for fm in model.files:
        stem = fm.name[: -len(".proto")]
        files[f"{stem}_bus.py"] = render_bus(model, fm)
        parts = stem.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            files["/".join(parts[:i]) + "/__init__.py"] = empty_init(".".join(parts[:i]))
    if any(fm.services for fm in model.files):
        files[REGISTRY_FILE] = render_registry(model)
    for name in sorted(files):
        response.file.add(name=name, content=files[name])
    return response
