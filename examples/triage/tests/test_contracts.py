"""The example's contracts: generated code that matches its proto, a subject
registry of its own, and validators that refuse a bad ticket."""

from __future__ import annotations

import filecmp
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

from helpdesk.triage.v1 import triage_bus, triage_pb2

from ai import registry as platform_registry

EXAMPLE = Path(__file__).resolve().parent.parent


def _differences(left: Path, right: Path) -> list[str]:
    """Files missing on either side or different, by their path under left."""
    cmp = filecmp.dircmp(left, right, ignore=["__pycache__"])
    found = [*cmp.left_only, *cmp.right_only, *cmp.diff_files, *cmp.funny_files]
    for name, sub in cmp.subdirs.items():
        found += [f"{name}/{d}" for d in _differences(left / name, right / name)]
    return found


def test_generated_code_is_what_buf_generates_from_the_proto(tmp_path: Path) -> None:
    # A copy in which the link to the platform's proto/ is a real directory:
    # what is generated there never touches the working tree.
    copy = tmp_path / "triage"
    copy.mkdir()
    for name in ("buf.yaml", "buf.gen.yaml"):
        shutil.copy2(EXAMPLE / name, copy / name)
    for name in ("proto", "platform_proto"):
        shutil.copytree(EXAMPLE / name, copy / name)
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    buf = shutil.which("buf", path=env["PATH"])
    assert buf is not None, "buf comes with the platform's dev extra"
    done = subprocess.run([buf, "generate"], cwd=copy, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    drift = _differences(EXAMPLE / "generated", copy / "generated")
    assert not drift, f"examples/triage/generated/ is stale, run `buf generate` in examples/triage: {drift}"


def test_the_subjects_are_the_examples_own_and_not_the_platforms() -> None:
    assert triage_bus.TRIAGE_TICKETS_SUBJECT == "ai.triage.tickets.{tenant_id}"
    assert triage_bus.triage_tickets_subject("acme") == "ai.triage.tickets.acme"
    assert triage_bus.TRIAGE_TICKETS.queue_group == "triage.workers"
    assert triage_bus.TRIAGE_TICKETS.reply_event == "triaged"
    assert not [key for key in platform_registry.BY_KEY if key.startswith("triage.")]
    # The plugin writes the registry of what it generated as ai/registry.py;
    # here that is the example's own, beside (not inside) the platform's.
    spec = importlib.util.spec_from_file_location("triage_registry", EXAMPLE / "generated" / "ai" / "registry.py")
    assert spec is not None and spec.loader is not None
    own = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(own)
    assert sorted(own.BY_KEY) == ["triage.tickets", "triage.triaged"]
    assert own.HANDLERS == {"triage": triage_bus.TriageServiceHandler}


def test_a_bad_ticket_is_refused_by_its_rules() -> None:
    violations = triage_bus.validate_ticket(triage_pb2.Ticket(subject="x" * 513))
    assert {(v.field, v.rule) for v in violations} == {("ticket_id", "required"), ("subject", "max_len"),
                                                       ("body", "required")}
    triaged = triage_pb2.TriagedTicket(ticket_id="t", confidence=1.5)
    triaged.sources.add(document_id="")
    assert {(v.field, v.rule) for v in triage_bus.validate_triaged_ticket(triaged)} == {
        ("confidence", "lte"), ("sources[0].document_id", "required")}

