"""The model list from the deployment's settings: the `chat` and `embedding`
aliases, what one variable moves, explicit fallbacks, and one clear error
for each setting that cannot work."""

from __future__ import annotations

from pathlib import Path

import pytest

from aisdk.components.gateway import models

BASE = "http://127.0.0.1:8000/v1"


def chain(env: dict[str, str], name: str) -> list[tuple[str, str]]:
    return [(d.model_name, d.model) for d in models.from_env(env).chain(name)]


def test_without_configuration_the_aliases_are_the_local_models() -> None:
    offline = models.from_env({})
    assert chain({}, "chat") == [("chat", "local/extractive")]
    assert chain({}, "embedding") == [("embedding", "local/wordllama")]
    assert offline.resolve("chat") == "local/extractive" and offline.resolve("embedding") == "local/wordllama"
    assert {"local/extractive", "local/wordllama", "chat", "embedding"} == set(offline.names)


def test_one_variable_moves_chat_and_nothing_falls_back_unless_asked() -> None:
    env = {"AISDK_GATEWAY_MODEL": "openai/test-model", "AISDK_GATEWAY_API_BASE": BASE}
    assert chain(env, "chat") == [("chat", "openai/test-model")]
    [d] = models.from_env(env).chain("chat")
    assert dict(d.params) == {"model": "openai/test-model", "api_base": BASE, "api_key": "none"}
    # The provider model is servable by its own name, and embeddings stay local.
    assert chain(env, "openai/test-model") == [("chat", "openai/test-model")]
    assert chain(env, "embedding") == [("embedding", "local/wordllama")]

    asked = {**env, "AISDK_GATEWAY_FALLBACK": "local/extractive"}
    assert chain(asked, "chat") == [("chat", "openai/test-model"), ("local/extractive", "local/extractive")]


def test_the_embedding_model_moves_embedding_with_the_same_api_base() -> None:
    env = {"AISDK_GATEWAY_EMBEDDING_MODEL": "openai/test-embed", "AISDK_GATEWAY_API_BASE": BASE,
           "AISDK_GATEWAY_API_KEY": "sk-test"}
    [d] = models.from_env(env).chain("embedding")
    assert dict(d.params) == {"model": "openai/test-embed", "api_base": BASE, "api_key": "sk-test"}
    assert models.from_env(env).resolve("chat") == "local/extractive"


def test_a_file_defines_the_aliases_and_keeps_the_local_default_of_one_it_leaves_out(tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    path.write_text("model_list:\n  - model_name: chat\n    litellm_params: {model: openai/a, api_base: http://x/v1}\n")
    env = {"AISDK_GATEWAY_MODELS": str(path)}
    assert chain(env, "chat") == [("chat", "openai/a")]
    assert chain(env, "embedding") == [("embedding", "local/wordllama")]


@pytest.mark.parametrize("env, message", [
    ({"AISDK_GATEWAY_MODELS": "m.yaml", "AISDK_GATEWAY_MODEL": "openai/a"},
     "AISDK_GATEWAY_MODELS names a model list, so AISDK_GATEWAY_MODEL would be ignored"),
    ({"AISDK_GATEWAY_FALLBACK": "local/extractive"}, "AISDK_GATEWAY_FALLBACK is set without AISDK_GATEWAY_MODEL"),
    ({"AISDK_GATEWAY_MODEL": "openai/a", "AISDK_GATEWAY_FALLBACK": "nowhere"},
     "fallbacks name models that have no deployment: nowhere"),
    ({"AISDK_GATEWAY_API_BASE": BASE}, "no AISDK_GATEWAY_MODEL or AISDK_GATEWAY_EMBEDDING_MODEL uses them"),
])
def test_settings_that_cannot_work_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(models.ModelListError, match=message):
        models.from_env(env)
