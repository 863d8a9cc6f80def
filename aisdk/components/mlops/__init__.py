"""MLOps (`aisdk serve mlops`): training, the model registry, deployments and
predictions, all state in PostgreSQL."""

from aisdk.components.mlops.service import Mlops

__all__ = ["Mlops"]
