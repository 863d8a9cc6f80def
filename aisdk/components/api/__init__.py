"""The public entry point (`aisdk serve api`): a user's question on
api.queries, routed by mode to the RAG worker, an agent or the gateway."""

from aisdk.components.api.routing import resolve
from aisdk.components.api.service import Api

__all__ = ["Api", "resolve"]
