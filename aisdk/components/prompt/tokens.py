"""Token counts from the gateway's tokenizer (litellm's `token_counter`), so
that a prompt fitted to a budget here fits the same budget in the gateway."""

from __future__ import annotations

import os
from collections.abc import Mapping

from aisdk.components.gateway import models
from aisdk.components.gateway.providers import litellm


def default_model(env: Mapping[str, str] = os.environ) -> str:
    """The gateway's default model: the first deployment of its model list
    (AISDK_GATEWAY_MODELS or AISDK_GATEWAY_MODEL), else its offline chat
    model. The provider's model name, which picks the tokenizer."""
    first = models.from_env(env).deployments[0]
    return str(first.params.get("model", first.model_name))


def count(model: str, text: str) -> int:
    """Tokens of `text` for `model`; litellm is imported on the first call."""
    return int(litellm().token_counter(model=model, text=text))
