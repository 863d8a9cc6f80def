"""AI components that run on the contracts. `aisdk serve NAME...` runs them."""

from __future__ import annotations

from collections.abc import Callable

from runtime.contract import ServiceHandler


def _prompt() -> ServiceHandler:
    from aisdk.components.prompt import PromptManager

    return PromptManager()


def _llmops() -> ServiceHandler:
    from aisdk.components.llmops import LlmOps

    return LlmOps()


def _gateway() -> ServiceHandler:
    from aisdk.components.gateway.service import Gateway

    return Gateway()


def _mlops() -> ServiceHandler:
    from aisdk.components.mlops import Mlops

    return Mlops()


def _rag() -> ServiceHandler:
    from aisdk.components.rag.worker import RagWorker

    return RagWorker()


def _api() -> ServiceHandler:
    from aisdk.components.api import Api

    return Api()


def _agents() -> ServiceHandler:
    from aisdk.components.agents.service import AgentsService

    return AgentsService()


# Factories, so that serving one component never imports another's
# dependencies (litellm is large and slow to import).
COMPONENTS: dict[str, Callable[[], ServiceHandler]] = {
    "prompt": _prompt,
    "llmops": _llmops,
    "gateway": _gateway,
    "rag": _rag,
    "mlops": _mlops,
    "agents": _agents,
    "api": _api,
}
