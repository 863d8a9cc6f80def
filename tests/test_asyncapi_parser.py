"""The official AsyncAPI parser (npm @asyncapi/parser 3.x, through Node)
reads `aisdk asyncapi` with zero errors and renders the payloads' fields.
npm installs the parser into a cache directory on first use (about 20 s);
without Node or npm the test fails naming the missing tool."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support import ROOT, aisdk

PARSER = "@asyncapi/parser@3.6.6"
SCRIPT = ROOT / "tests" / "node" / "asyncapi_parse.cjs"


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: the AsyncAPI parser test runs {PARSER} through Node.js "
                    "(Debian: apt-get install nodejs npm)")
    return found


@pytest.fixture(scope="module")
def parser_home() -> Path:
    """A folder with the parser installed, kept between runs."""
    home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "aisdk" / "asyncapi-parser-3.6.6"
    if not (home / "node_modules" / "@asyncapi" / "parser" / "package.json").is_file():
        home.mkdir(parents=True, exist_ok=True)
        out = subprocess.run([_tool("npm"), "install", "--prefix", str(home), "--no-audit", "--no-fund",
                              "--loglevel=error", PARSER], capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr
    return home


def parse(parser_home: Path, document: Path) -> dict[str, Any]:
    script = parser_home / SCRIPT.name
    shutil.copyfile(SCRIPT, script)  # beside node_modules, where require() looks
    out = subprocess.run([_tool("node"), str(script), str(document)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def test_the_official_parser_reads_the_document_with_zero_errors(parser_home: Path, tmp_path: Path) -> None:
    document = tmp_path / "asyncapi.json"
    made = aisdk(ROOT, "asyncapi", "-o", str(document))
    assert made.returncode == 0, made.stderr
    result = parse(parser_home, document)
    assert result["errors"] == [] and result["parsed"]
    doc = json.loads(document.read_text())
    assert result["channels"] == len(doc["channels"]) and result["messages"] == len(doc["components"]["messages"])
    # It rendered the first message's fields from its JSON Schema.
    first = doc["components"]["schemas"][next(iter(doc["components"]["messages"]))]
    assert result["example"]["properties"] == list(first["properties"])


def test_the_parser_can_fail(parser_home: Path, tmp_path: Path) -> None:
    """The positive control: a reference to nothing is an error it reports."""
    doc = json.loads(aisdk(ROOT, "asyncapi").stdout)
    first = next(iter(doc["components"]["messages"].values()))
    first["payload"] = {"$ref": "#/components/schemas/no_such_schema"}
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(doc))
    result = parse(parser_home, broken)
    assert result["errors"], result
