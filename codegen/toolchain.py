"""Runs buf for `aisdk gen` and `aisdk lint` with this environment's tools."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


class ToolchainError(Exception):
    """buf is missing, the project root is not found, or buf failed."""


def project_root(start: Path | None = None) -> Path:
    """The nearest directory at or above start that holds buf.gen.yaml."""
    here = (start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / "buf.gen.yaml").is_file() and (d / "buf.yaml").is_file():
            return d
    raise ToolchainError(f"no buf.yaml and buf.gen.yaml at or above {here}: run this inside the project")


def tool_env() -> dict[str, str]:
    """PATH with this interpreter's bin first, so buf.gen.yaml's `python` and
    protoc-gen-python_betterproto are the ones installed beside us."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def buf(*args: str, root: Path | None = None, quiet: bool = False) -> subprocess.CompletedProcess[str]:
    env = tool_env()
    exe = shutil.which("buf", path=env["PATH"])
    if exe is None:
        raise ToolchainError("buf is not installed: it comes with the dev extra (pip install 'aisdk-contracts[dev]')")
    cwd = root or project_root()
    result = subprocess.run([exe, *args], cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip()
        raise ToolchainError(f"buf {' '.join(args)} failed:\n{detail}" if detail else f"buf {args[0]} failed")
    if not quiet and result.stdout.strip():
        print(result.stdout.rstrip())
    return result


def generate(root: Path | None = None) -> Path:
    """Regenerate generated/ from proto/ (the same as `buf generate`)."""
    root = root or project_root()
    buf("generate", root=root, quiet=True)
    return root / "generated"


def lint(root: Path | None = None) -> None:
    buf("lint", root=root)
