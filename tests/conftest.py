from __future__ import annotations

import subprocess

import pytest
from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2

from tests.support import ROOT, buf_exe, request_for

# The runtime's fixtures and a throwaway PostgreSQL cluster for the session.
pytest_plugins = ["aisdk.components.testing"]

# Kept importable from here while test modules move to tests.support.
__all__ = ["ROOT", "request_for"]


@pytest.fixture(scope="session")
def image(tmp_path_factory: pytest.TempPathFactory) -> descriptor_pb2.FileDescriptorSet:
    """The real buf image of this checkout's proto/, imports included, in dependency order."""
    out = tmp_path_factory.mktemp("image") / "image.binpb"
    subprocess.run([buf_exe(), "build", "-o", str(out)], cwd=ROOT, check=True)
    return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


@pytest.fixture
def request_(image: descriptor_pb2.FileDescriptorSet) -> plugin_pb2.CodeGeneratorRequest:
    return request_for(image)
