"""Model artifacts: pickles of fitted estimators.

Trust boundary: unpickling runs code, so only artifacts this service wrote
are loaded. They live in the service's own database tables, which nothing
else writes; the digest recorded with each one is checked before loading
(it catches a damaged or swapped blob, not a writer with database access),
and an artifact pickled by another scikit-learn version is refused rather
than loaded into classes that may have changed."""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass
from typing import Any


class ArtifactError(RuntimeError):
    """An artifact that must not be loaded."""


@dataclass(frozen=True, slots=True)
class Artifact:
    data: bytes
    sha256: str
    sklearn_version: str


def _sklearn_version() -> str:
    import sklearn  # type: ignore[import-untyped]

    return str(sklearn.__version__)


def dump(model: Any) -> Artifact:
    data = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    return Artifact(data, hashlib.sha256(data).hexdigest(), _sklearn_version())


def load(artifact: Artifact, what: str) -> Any:
    if hashlib.sha256(artifact.data).hexdigest() != artifact.sha256:
        raise ArtifactError(f"{what}: the artifact does not match its recorded digest")
    if artifact.sklearn_version != _sklearn_version():
        raise ArtifactError(
            f"{what} was trained with scikit-learn {artifact.sklearn_version}, this worker runs "
            f"{_sklearn_version()}: train it again"
        )
    return pickle.loads(artifact.data)  # noqa: S301 - written by this service (see the module docstring)
