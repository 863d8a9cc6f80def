from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2

from codegen.toolchain import tool_env

pytest_plugins = ["runtime.testing"]

ROOT = Path(__file__).resolve().parent.parent


def buf_exe() -> str:
    exe = shutil.which("buf", path=tool_env()["PATH"])
    assert exe is not None, "buf is not installed (pip install -e '.[dev]')"
    return exe


@pytest.fixture(scope="session")
def image(tmp_path_factory: pytest.TempPathFactory) -> descriptor_pb2.FileDescriptorSet:
    """The real buf image of proto/, imports included, in dependency order."""
    out = tmp_path_factory.mktemp("image") / "image.binpb"
    subprocess.run([buf_exe(), "build", "-o", str(out)], cwd=ROOT, check=True)
    return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


def request_for(image: descriptor_pb2.FileDescriptorSet) -> plugin_pb2.CodeGeneratorRequest:
    """The request buf sends the plugin with `strategy: all`."""
    req = plugin_pb2.CodeGeneratorRequest()
    req.proto_file.extend(image.file)
    req.file_to_generate.extend(f.name for f in image.file if f.name.startswith("ai/"))
    return req


@pytest.fixture
def request_(image: descriptor_pb2.FileDescriptorSet) -> plugin_pb2.CodeGeneratorRequest:
    return request_for(image)
