"""Token counts from the gateway's tokenizer (litellm's `token_counter`), so
that a prompt fitted to a budget here fits the same budget in the gateway."""

from __future__ import annotations

import os
from collections.abc import Mapping

from aisdk.components.gateway import models
from aisdk.components.gateway.providers import litellm


def default_model(env: Mapping[str, str] = os.environ) -> str:
    """The provider model behind the gateway's `chat` alias, which the
    components answer with, read from the deployment's own settings
    (AISDK_GATEWAY_MODELS, AISDK_GATEWAY_MODEL): its name picks the
    tokenizer, where an alias means nothing to litellm's token counter."""
    return models.from_env(env).resolve(models.CHAT)


def count(model: str, text: str) -> int:
    """Tokens of `text` for `model`; litellm is imported on the first call."""
    return int(litellm().token_counter(model=model, text=text))
