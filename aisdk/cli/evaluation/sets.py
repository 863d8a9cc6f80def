"""Evaluation sets: a folder with set.json (name, description, where the
documents are) and questions.jsonl (one question per line)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aisdk.cli.errors import CommandError

SETS = Path(__file__).resolve().parent / "sets"
KINDS = ("single", "multi", "unanswerable")


@dataclass(frozen=True, slots=True)
class Question:
    id: str
    question: str
    answerable: bool
    # Document ids (file names under the set's documents) that answer it, best first.
    expected: tuple[str, ...]
    kind: str
    # A phrase of the first expected document that carries the answer.
    evidence: str = ""


@dataclass(frozen=True, slots=True)
class EvalSet:
    name: str
    description: str
    documents: Path
    questions: tuple[Question, ...]

    @property
    def answerable(self) -> list[Question]:
        return [q for q in self.questions if q.answerable]


def names() -> list[str]:
    return sorted(p.name for p in SETS.iterdir() if (p / "set.json").is_file()) if SETS.is_dir() else []


def _question(raw: object, where: str, documents: set[str]) -> Question:
    if not isinstance(raw, dict):
        raise CommandError(f"{where}: expected a JSON object")
    try:
        q = Question(
            id=str(raw["id"]), question=str(raw["question"]).strip(), answerable=bool(raw["answerable"]),
            expected=tuple(str(e) for e in raw.get("expected") or ()), kind=str(raw.get("kind", "single")),
            evidence=str(raw.get("evidence") or ""),
        )
    except KeyError as e:
        raise CommandError(f"{where}: missing {e}") from None
    if not q.question:
        raise CommandError(f"{where}: the question is empty")
    if q.kind not in KINDS:
        raise CommandError(f"{where}: kind {q.kind!r} is not one of {', '.join(KINDS)}")
    if q.answerable != bool(q.expected) or q.answerable == (q.kind == "unanswerable"):
        raise CommandError(f"{where}: an answerable question names its expected documents and is not "
                           "'unanswerable'; an unanswerable one names none")
    unknown = [e for e in q.expected if e not in documents]
    if unknown:
        raise CommandError(f"{where}: expected document(s) not in the set: {', '.join(unknown)}")
    return q


def load(name_or_path: str) -> EvalSet:
    """A set by name (a folder under sets/) or by path; every line checked."""
    folder = Path(name_or_path)
    if not (folder / "set.json").is_file():
        folder = SETS / name_or_path
    meta_file = folder / "set.json"
    if not meta_file.is_file():
        known = ", ".join(names()) or "none"
        raise CommandError(f"no evaluation set {name_or_path!r} (a folder with set.json; shipped: {known})")
    try:
        meta = json.loads(meta_file.read_text())
    except ValueError as e:
        raise CommandError(f"{meta_file}: not JSON ({e})") from None
    documents = (folder / str(meta.get("documents", "docs"))).resolve()
    if not documents.is_dir():
        raise CommandError(f"{meta_file}: documents folder {documents} does not exist")
    present = {p.relative_to(documents).as_posix() for p in documents.rglob("*") if p.is_file()}
    questions: list[Question] = []
    seen: set[str] = set()
    lines = (folder / "questions.jsonl").read_text().splitlines()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{folder.name}/questions.jsonl:{n}"
        try:
            raw = json.loads(line)
        except ValueError as e:
            raise CommandError(f"{where}: not JSON ({e})") from None
        q = _question(raw, where, present)
        if q.id in seen:
            raise CommandError(f"{where}: id {q.id} appears twice")
        seen.add(q.id)
        questions.append(q)
    if not questions:
        raise CommandError(f"{folder}/questions.jsonl has no questions")
    return EvalSet(str(meta.get("name", folder.name)), str(meta.get("description", "")), documents,
                   tuple(questions))


def load_all(names_or_paths: Sequence[str]) -> list[EvalSet]:
    return [load(n) for n in names_or_paths]
