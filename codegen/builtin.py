"""protoc's own Python generator and the betterproto flavour as buf `local`
plugins, run by the interpreter buf finds as `python`.

buf hides the error output of a `protoc_builtin` plugin ("plugin python:
exit status 1" and nothing else), so `buf generate` run with a python that
lacks the dev tools said nothing useful. As local plugins they can check
first and say what to do; the output is the same (protoc gets the request's
descriptors instead of parsing the .proto files again).

    python -m codegen.builtin python        # *_pb2.py and *_pb2.pyi
    python -m codegen.builtin betterproto   # the dataclass flavour
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
from pathlib import Path

# The dev extra's modules each plugin needs, besides protobuf.
NEEDS = {
    "python": ("google.protobuf", "grpc_tools"),
    "betterproto": ("google.protobuf", "betterproto"),
}


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def preflight(plugin: str, modules: tuple[str, ...]) -> None:
    """Exit with one line naming what is missing and how to run instead."""
    missing = [m for m in modules if not _installed(m)]
    if missing:
        print(
            f"{plugin}: {sys.executable} has no {', '.join(missing)}: run `aisdk gen` (or `make gen`), which "
            "runs buf with the project's virtualenv, or install the dev extra into this python "
            "(pip install -e '.[dev]')",
            file=sys.stderr,
        )
        raise SystemExit(1)


def protoc_python(data: bytes) -> bytes:
    """protoc --python_out --pyi_out over the request's files."""
    from google.protobuf import descriptor_pb2
    from google.protobuf.compiler import plugin_pb2
    from grpc_tools import protoc

    request = plugin_pb2.CodeGeneratorRequest.FromString(data)
    response = plugin_pb2.CodeGeneratorResponse()
    with tempfile.TemporaryDirectory() as tmp:
        image = Path(tmp) / "image.binpb"
        image.write_bytes(descriptor_pb2.FileDescriptorSet(file=request.proto_file).SerializeToString())
        out = Path(tmp) / "out"
        out.mkdir()
        code = protoc.main(
            ["protoc", f"--descriptor_set_in={image}", f"--python_out={out}", f"--pyi_out={out}",
             *request.file_to_generate]
        )
        if code != 0:
            response.error = f"protoc exited with {code}"
        else:
            for path in sorted(p for p in out.rglob("*") if p.is_file()):
                response.file.add(name=path.relative_to(out).as_posix(), content=path.read_text())
    return response.SerializeToString()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in NEEDS:
        print(f"usage: python -m codegen.builtin {{{','.join(NEEDS)}}}", file=sys.stderr)
        return 2
    plugin = args[0]
    preflight(f"plugin {plugin}", NEEDS[plugin])
    if plugin == "python":
        sys.stdout.buffer.write(protoc_python(sys.stdin.buffer.read()))
        return 0
    from betterproto.plugin.main import main as betterproto_main

    betterproto_main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
