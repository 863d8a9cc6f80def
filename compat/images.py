"""buf images: the contracts as descriptors, from the working tree, a git
ref or a released baseline under compat/baselines/.

A baseline is `buf build --exclude-source-info -o`: every file with its
imports, no comments or line numbers, so editing a comment never changes a
released contract and the files stay small enough to review in a PR.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from functools import cached_property
from pathlib import Path

from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.compiler import plugin_pb2

from codegen import toolchain
from codegen.model import Model, build
from compat.report import CompatError

PROTO_DIR = "proto"  # the module path in buf.yaml; buf's paths start with it
BASELINE_DIR = Path("compat") / "baselines"
_RELEASE = re.compile(r"v?(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)")


class Image:
    """One version of the contracts, with a descriptor pool of its own so
    several versions can be loaded side by side in one process."""

    def __init__(self, label: str, files: descriptor_pb2.FileDescriptorSet, path: Path | None = None) -> None:
        self.label = label
        self.files = files
        self.path = path  # an image file buf can read, if there is one

    @classmethod
    def load(cls, path: Path, label: str | None = None) -> Image:
        data = descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes())
        return cls(label or path.name.removesuffix(".binpb"), data, path)

    @cached_property
    def pool(self) -> descriptor_pool.DescriptorPool:
        pool = descriptor_pool.DescriptorPool()
        for fdp in self.files.file:
            pool.Add(fdp)
        return pool

    @cached_property
    def model(self) -> Model:
        """The generator's view (subjects, versions); ContractError if the
        contracts are not ones the generator accepts."""
        return build(request(self.files))

    def file(self, name: str) -> descriptor_pb2.FileDescriptorProto | None:
        return next((f for f in self.files.file if f.name == name), None)

    def contract_files(self) -> list[descriptor_pb2.FileDescriptorProto]:
        return [f for f in self.files.file if not f.name.startswith("google/")]


def request(files: descriptor_pb2.FileDescriptorSet) -> plugin_pb2.CodeGeneratorRequest:
    """The request buf sends the generator with `strategy: all`."""
    req = plugin_pb2.CodeGeneratorRequest()
    req.proto_file.extend(files.file)
    req.file_to_generate.extend(f.name for f in files.file if not f.name.startswith("google/"))
    return req


def build_image(root: Path, out: Path, source: str = "", *, source_info: bool = False) -> Path:
    """buf build of the working tree, or of `source` (a buf input such as a
    git ref), into `out`."""
    args = ["build", *([source] if source else []), "-o", str(out)]
    if not source_info:
        args.append("--exclude-source-info")
    toolchain.buf(*args, root=root, quiet=True)
    return out


def current(root: Path, workdir: Path) -> Image:
    """The working tree, with source info so findings can give line numbers."""
    return Image.load(build_image(root, workdir / "current.binpb", source_info=True), "working tree")


def git_input(root: Path, ref: str) -> str:
    """The buf input for the project tree at a git ref.

    buf reads `.git#ref=...` relative to where it runs, the project root;
    a project below the repository's top level needs `subdir`.
    """
    commit = _git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if commit is None:
        raise CompatError(f"unknown git ref {ref!r}: give a branch, tag or commit of this repository")
    top = Path(_git(root, "rev-parse", "--show-toplevel") or root)
    sub = root.resolve().relative_to(top.resolve()).as_posix()
    if sub == ".":
        return f".git#ref={commit}"
    up = "/".join(".." for _ in sub.split("/"))
    return f"{up}/.git#ref={commit},subdir={sub}"


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    except FileNotFoundError:
        raise CompatError("git is not installed: --against REF needs it") from None
    return out.stdout.strip() if out.returncode == 0 else None


def at_ref(root: Path, ref: str, workdir: Path) -> Image:
    out = workdir / "against.binpb"
    return Image.load(build_image(root, out, git_input(root, ref)), ref)


def release_key(version: str) -> tuple[int, int, int]:
    m = _RELEASE.fullmatch(version)
    if m is None:
        raise CompatError(f"release version {version!r} is not vMAJOR.MINOR.PATCH (e.g. v1.1.0)")
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def baselines(root: Path) -> list[Image]:
    """Every released baseline, oldest first."""
    found = []
    for path in (root / BASELINE_DIR).glob("*.binpb"):
        name = path.name.removesuffix(".binpb")
        if _RELEASE.fullmatch(name) is None:
            raise CompatError(f"{BASELINE_DIR / path.name}: baseline names are vMAJOR.MINOR.PATCH.binpb")
        found.append((release_key(name), path))
    return [Image.load(path) for _, path in sorted(found)]


def next_baseline(root: Path, version: str) -> Path:
    """Where the baseline of `version` goes; it must be newer than every
    released one (baselines are append-only, like the releases they record)."""
    key = release_key(version)
    name = "v{}.{}.{}".format(*key)
    previous = baselines(root)
    if previous and key <= release_key(previous[-1].label):
        raise CompatError(f"{name} is not newer than the latest baseline {previous[-1].label}")
    return root / BASELINE_DIR / f"{name}.binpb"


def write_baseline(root: Path, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        built = build_image(root, Path(tmp) / out.name)
        out.write_bytes(built.read_bytes())
    return out
