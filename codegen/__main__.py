"""The plugin's edge: CodeGeneratorRequest on stdin, response on stdout."""

from __future__ import annotations

import os
import sys

from codegen import __version__
from codegen.builtin import preflight

# Set to a file path to keep the request for a test case or a bug report.
DUMP_ENV = "AISDK_CODEGEN_DUMP"


def main() -> int:
    if sys.argv[1:] == ["--version"]:
        print(f"protoc-gen-aisdk {__version__}")
        return 0
    preflight("protoc-gen-aisdk", ("google.protobuf",))
    from google.protobuf.compiler import plugin_pb2

    from codegen.plugin import generate

    data = sys.stdin.buffer.read()
    dump = os.environ.get(DUMP_ENV)
    if dump:
        with open(dump, "wb") as f:
            f.write(data)
    request = plugin_pb2.CodeGeneratorRequest.FromString(data)
    sys.stdout.buffer.write(generate(request).SerializeToString())
    return 0


if __name__ == "__main__":
    sys.exit(main())
