"""A ticket's text as the numbers an MLOps model takes: how often each word
stem of a fixed vocabulary occurs. The same function turns the labelled
tickets into training data and a new ticket into a prediction's features,
so training and serving cannot disagree."""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from pathlib import Path

# Stems, matched at the start of a word ("refund" counts "refunded").
VOCABULARY: tuple[str, ...] = (
    "bill", "card", "charge", "invoice", "money", "paid", "pay", "price", "refund", "twice",
    "address", "arriv", "courier", "deliver", "late", "package", "parcel", "ship", "track",
    "account", "email", "forgot", "locked", "login", "logged", "password", "reset", "sign",
    "batter", "broke", "crack", "defect", "repair", "screen", "stopped", "warranty", "working",
)
_WORD = re.compile(r"[a-z]+")


class DatasetError(ValueError):
    """The labelled tickets cannot be used; the message says why."""


def features(text: str) -> list[float]:
    """One count per stem of VOCABULARY, in its order."""
    words = _WORD.findall(text.lower())
    return [float(sum(w.startswith(stem) for w in words)) for stem in VOCABULARY]


def labelled(path: Path) -> list[tuple[str, str]]:
    """The (text, category) rows of a CSV with a `text,category` header."""
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    if not rows or rows[0] != ["text", "category"]:
        raise DatasetError(f"{path.name}: the first row must be the header text,category")
    body = rows[1:]
    bad = [n for n, row in enumerate(body, start=2) if len(row) != 2 or not row[0].strip() or not row[1].strip()]
    if bad:
        raise DatasetError(f"{path.name}: row {bad[0]} needs a text and a category")
    if len({category for _, category in body}) < 2:
        raise DatasetError(f"{path.name}: a classifier needs two or more categories")
    return [(text, category) for text, category in body]


def write_training_csv(rows: Sequence[tuple[str, str]], out: Path) -> Path:
    """The training data MLOps reads (`file:<name>.csv`): a header, one
    numeric column per stem, the category last."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*VOCABULARY, "category"])
        for text, category in rows:
            writer.writerow([*(int(v) for v in features(text)), category])
    return out
