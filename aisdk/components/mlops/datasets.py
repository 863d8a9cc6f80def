"""Training data named by a job: a dataset shipped with scikit-learn
(`sklearn:iris`) or a CSV file in the data folder (`file:prices.csv`)."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

DATA_DIR_ENV = "AISDK_MLOPS_DATA_DIR"
BUNDLED = ("breast_cancer", "diabetes", "digits", "iris", "wine")


class DatasetError(ValueError):
    """The job names data that cannot be used; the message says why."""


@dataclass(frozen=True, slots=True)
class Dataset:
    x: npt.NDArray[np.float64]
    y: npt.NDArray[Any]
    feature_names: list[str]
    # Label of each class index for classification data; empty for numbers.
    class_names: list[str]


def load(name: str, data_dir: Path | None = None) -> Dataset:
    scheme, _, rest = name.partition(":")
    if scheme == "sklearn":
        return _bundled(rest)
    if scheme == "file":
        folder = data_dir or (Path(os.environ[DATA_DIR_ENV]) if os.environ.get(DATA_DIR_ENV) else None)
        return _csv(rest, folder)
    raise DatasetError(
        f"unknown training data {name!r}: use sklearn:<{'|'.join(BUNDLED)}> or file:<name>.csv"
    )


def _bundled(name: str) -> Dataset:
    if name not in BUNDLED:
        raise DatasetError(f"no bundled dataset {name!r}; scikit-learn ships {', '.join(BUNDLED)}")
    import sklearn.datasets  # type: ignore[import-untyped]

    bunch = getattr(sklearn.datasets, f"load_{name}")()
    classes = [str(c) for c in getattr(bunch, "target_names", [])]
    return Dataset(np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target),
                   [str(f) for f in bunch.feature_names], classes)


def _csv(name: str, folder: Path | None) -> Dataset:
    """A header row, numeric feature columns, and the target in the last
    column (labels or numbers). Only files inside the data folder are read."""
    if folder is None:
        raise DatasetError(f"file:{name} needs a data folder: set {DATA_DIR_ENV}")
    root = folder.resolve()
    path = (root / name).resolve()
    if not path.is_relative_to(root) or path.suffix != ".csv":
        raise DatasetError(f"file:{name} must name a .csv file inside the data folder")
    if not path.is_file():
        raise DatasetError(f"no file {name!r} in the data folder")
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    if len(rows) < 3 or len(rows[0]) < 2:
        raise DatasetError(f"file:{name} needs a header, two or more rows and two or more columns")
    header, body = rows[0], rows[1:]
    try:
        x = np.asarray([[float(v) for v in r[:-1]] for r in body], dtype=np.float64)
    except ValueError as e:
        raise DatasetError(f"file:{name}: a feature value is not a number ({e})") from e
    if x.ndim != 2 or x.shape[1] != len(header) - 1:
        raise DatasetError(f"file:{name}: every row needs {len(header)} columns")
    targets = [r[-1] for r in body]
    try:
        return Dataset(x, np.asarray([float(t) for t in targets]), header[:-1], [])
    except ValueError:
        labels = sorted(set(targets))
        return Dataset(x, np.asarray([labels.index(t) for t in targets]), header[:-1], labels)
