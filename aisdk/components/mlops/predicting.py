"""Turning a prediction request's features into a model's input row, and its
answer into the reply's output."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format, struct_pb2

VALUES = "values"


class FeatureError(ValueError):
    """Features the model cannot take; the message says what it expects."""


@dataclass(frozen=True, slots=True)
class Prediction:
    output: struct_pb2.Struct
    confidence: float


def row(features: struct_pb2.Struct, names: Sequence[str], what: str) -> list[float]:
    """`{"values": [..]}` in the model's feature order, or one field per feature name."""
    given = json_format.MessageToDict(features)
    expected = f"{what} takes {len(names)} features ({', '.join(names)})"
    if VALUES in given:
        values = given[VALUES]
        if not isinstance(values, list) or len(given) != 1:
            raise FeatureError(f'{expected}: give them as {{"values": [...]}} or by name')
        if len(values) != len(names):
            raise FeatureError(f"{expected}, got {len(values)}")
    else:
        missing = [n for n in names if n not in given]
        extra = sorted(set(given) - set(names))
        if missing or extra:
            raise FeatureError(
                f"{expected}" + (f"; missing: {', '.join(missing)}" if missing else "")
                + (f"; unknown: {', '.join(extra)}" if extra else "")
            )
        values = [given[n] for n in names]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values):
        raise FeatureError(f"{what}: every feature must be a finite number")
    return [float(v) for v in values]


def answer(model: Any, x: list[float], classes: Sequence[str]) -> Prediction:
    """A classifier answers its label, with the class probabilities and the
    top one as confidence; a regressor its value (confidence 0: unknown)."""
    output = struct_pb2.Struct()
    if not classes:
        output.update({"value": float(model.predict([x])[0])})
        return Prediction(output, 0.0)
    if hasattr(model, "predict_proba"):
        probabilities = [float(p) for p in model.predict_proba([x])[0]]
    else:
        index = list(model.classes_).index(model.predict([x])[0])
        probabilities = [1.0 if i == index else 0.0 for i in range(len(classes))]
    best = max(range(len(classes)), key=probabilities.__getitem__)
    output.update({"label": classes[best], "probabilities": dict(zip(classes, probabilities, strict=True))})
    return Prediction(output, min(max(probabilities[best], 0.0), 1.0))
