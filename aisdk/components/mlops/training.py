"""Training one scikit-learn model on a dataset, with held-out metrics."""

from __future__ import annotations

import importlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aisdk.components.mlops.datasets import Dataset

# model_type -> (module, class, is a classifier)
MODEL_TYPES: Mapping[str, tuple[str, str, bool]] = {
    "logistic_regression": ("sklearn.linear_model", "LogisticRegression", True),
    "decision_tree_classifier": ("sklearn.tree", "DecisionTreeClassifier", True),
    "random_forest_classifier": ("sklearn.ensemble", "RandomForestClassifier", True),
    "k_neighbors_classifier": ("sklearn.neighbors", "KNeighborsClassifier", True),
    "linear_regression": ("sklearn.linear_model", "LinearRegression", False),
    "ridge": ("sklearn.linear_model", "Ridge", False),
    "random_forest_regressor": ("sklearn.ensemble", "RandomForestRegressor", False),
}
# Job parameters that shape the run rather than the estimator.
TEST_SIZE = "test_size"
RANDOM_STATE = "random_state"
DEFAULT_TEST_SIZE = 0.25


class TrainingError(ValueError):
    """The job cannot train: unknown model type, bad parameters, unusable data."""


@dataclass(frozen=True, slots=True)
class Trained:
    model: Any
    metrics: dict[str, float]
    classes: list[str]


def _estimator(model_type: str, params: Mapping[str, Any]) -> tuple[Any, bool]:
    if model_type not in MODEL_TYPES:
        raise TrainingError(f"unknown model type {model_type!r}; known: {', '.join(sorted(MODEL_TYPES))}")
    module, name, classifier = MODEL_TYPES[model_type]
    estimator = getattr(importlib.import_module(module), name)()
    accepted = estimator.get_params()
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise TrainingError(f"{model_type} takes no parameter {', '.join(unknown)}")
    # Struct numbers are doubles: 100.0 must reach n_estimators as 100.
    estimator.set_params(**{k: int(v) if isinstance(v, float) and v.is_integer() else v for k, v in params.items()})
    return estimator, classifier


def train(model_type: str, data: Dataset, parameters: Mapping[str, Any]) -> Trained:
    from sklearn.metrics import (  # type: ignore[import-untyped]
        accuracy_score, f1_score, mean_absolute_error, r2_score)
    from sklearn.model_selection import train_test_split  # type: ignore[import-untyped]

    params = dict(parameters)
    test_size = params.pop(TEST_SIZE, DEFAULT_TEST_SIZE)
    if not isinstance(test_size, float | int) or not 0 < test_size < 1:
        raise TrainingError(f"{TEST_SIZE} must be a fraction between 0 and 1, not {test_size!r}")
    seed = int(params.get(RANDOM_STATE, 0))
    estimator, classifier = _estimator(model_type, params)
    if classifier and data.y.dtype.kind == "f" and not all(float(v).is_integer() for v in data.y):
        raise TrainingError(f"{model_type} is a classifier, but the target has continuous values")
    try:
        x_train, x_test, y_train, y_test = train_test_split(
            data.x, data.y, test_size=test_size, random_state=seed,
            stratify=data.y if classifier else None,
        )
        t0 = time.perf_counter()
        estimator.fit(x_train, y_train)
        fit_s = time.perf_counter() - t0
        predicted = estimator.predict(x_test)
    except ValueError as e:
        raise TrainingError(f"{model_type} cannot train on this data: {e}") from e
    metrics = {"fit_seconds": fit_s, "train_samples": float(len(y_train)), "test_samples": float(len(y_test))}
    if classifier:
        metrics["accuracy"] = float(accuracy_score(y_test, predicted))
        metrics["f1_macro"] = float(f1_score(y_test, predicted, average="macro"))
        names = data.class_names
        classes = [names[int(c)] if names else _label(c) for c in estimator.classes_]
    else:
        metrics["r2"] = float(r2_score(y_test, predicted))
        metrics["mae"] = float(mean_absolute_error(y_test, predicted))
        classes = []
    return Trained(estimator, metrics, classes)


def _label(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
