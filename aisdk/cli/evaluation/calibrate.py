"""`aisdk eval --calibrate`: fit the abstention decision (rag.evidence) on the
sets' questions and write it to calibration.json.

A logistic regression (scikit-learn) over the evidence features, with both
classes weighted alike; then the threshold that refuses as many unanswerable
questions as possible while refusing at most MAX_REFUSED of the answerable
ones. Figures in-sample flatter a model, so the same procedure also runs in
stratified five-fold cross-validation, and those are the figures to quote.
"""

from __future__ import annotations

import datetime
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aisdk.cli.evaluation.run import Outcome, SetRun
from aisdk.components.rag.evidence import CALIBRATION_FILE, FEATURES, Calibration

MAX_REFUSED = 0.05
FOLDS = 5
TRADE_OFF = (0.05, 0.10, 0.20, 0.30)


def _matrix(outcomes: Sequence[Outcome]) -> tuple[list[list[float]], list[int]]:
    return [[o.features[f] for f in FEATURES] for o in outcomes], [int(o.question.answerable) for o in outcomes]


def threshold(support: Sequence[float], answerable: Sequence[int], max_refused: float = MAX_REFUSED) -> float:
    """Between the last answerable question it may refuse and the first it
    must answer: at most max_refused of them fall below it."""
    scores = sorted(s for s, a in zip(support, answerable) if a)
    if not scores:
        return 0.5
    allowed = math.floor(max_refused * len(scores))
    if allowed == 0:
        return scores[0] * (1 - 1e-6)
    return (scores[allowed - 1] + scores[allowed]) / 2


def _fit(x: list[list[float]], y: list[int], max_refused: float = MAX_REFUSED) -> tuple[Any, float]:
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]

    model = LogisticRegression(class_weight="balanced", max_iter=2000).fit(x, y)
    return model, threshold(list(model.predict_proba(x)[:, 1]), y, max_refused)


def _figures(refused: Sequence[bool], answerable: Sequence[int]) -> dict[str, float]:
    right = sum(r and not a for r, a in zip(refused, answerable))
    unanswerable = sum(1 for a in answerable if not a)
    return {
        "precision": right / sum(refused) if any(refused) else 1.0,
        "recall": right / unanswerable if unanswerable else 0.0,
        "answerable_refused": sum(r and a for r, a in zip(refused, answerable)) / max(1, sum(answerable)),
    }


def cross_validated(x: list[list[float]], y: list[int], folds: int = FOLDS,
                    max_refused: float = MAX_REFUSED) -> dict[str, float]:
    from sklearn.model_selection import StratifiedKFold  # type: ignore[import-untyped]

    refused = [False] * len(y)
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=0).split(x, y):
        model, t = _fit([x[i] for i in train], [y[i] for i in train], max_refused)
        for i, s in zip(test, model.predict_proba([x[i] for i in test])[:, 1]):
            refused[i] = s < t
    return _figures(refused, y)


def calibrate(runs: Sequence[SetRun], path: Path = CALIBRATION_FILE) -> dict[str, Any]:
    outcomes = [o for r in runs for o in r.outcomes]
    x, y = _matrix(outcomes)
    if len(set(y)) < 2:
        raise ValueError("calibrating needs answerable and unanswerable questions")
    model, t = _fit(x, y)
    fitted = [s < t for s in model.predict_proba(x)[:, 1]]
    figures: dict[str, Any] = {"in_sample": _figures(fitted, y), "cross_validated": cross_validated(x, y)}
    # What a stricter threshold would buy: the trade-off, cross-validated.
    figures["trade_off"] = {f"{share:.2f}": cross_validated(x, y, max_refused=share) for share in TRADE_OFF}
    cv = figures["cross_validated"]
    sizes = ", ".join(f"{r.name} ({len(r.outcomes)})" for r in runs)
    calibration = Calibration(
        weights={f: round(float(w), 6) for f, w in zip(FEATURES, model.coef_[0])},
        bias=round(float(model.intercept_[0]), 6), threshold=round(t, 6),
        provenance=f"aisdk eval --calibrate on {sizes} questions, {datetime.date.today().isoformat()}; "
                   f"{FOLDS}-fold cross-validated: precision {cv['precision']:.3f}, recall {cv['recall']:.3f}, "
                   f"answerable refused {cv['answerable_refused']:.3f}",
    )
    path.write_text(json.dumps(calibration.to_json(), indent=2) + "\n")
    return {"calibration": calibration.to_json(), **figures}
