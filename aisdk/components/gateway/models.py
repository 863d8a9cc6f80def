"""The model list: which deployments serve a model name, in fallback order.

From a YAML or TOML file (`AISDK_GATEWAY_MODELS`), in litellm's own
`model_list` shape:

    model_list:
      - model_name: chat
        litellm_params: {model: openai/gpt-4o-mini, api_key: os.environ/OPENAI_API_KEY}
      - model_name: chat
        litellm_params: {model: local/extractive}
    fallbacks:
      chat: [local/extractive]

Deployments that share a model_name are tried in file order; then the
models named in `fallbacks`. The local models are always listed. Without a
file, environment variables cover the common case: AISDK_GATEWAY_MODEL
(e.g. `openai/gpt-4o-mini`) with its API key in the provider's usual variable,
or AISDK_GATEWAY_API_BASE for an OpenAI-compatible server; that model falls
back to `local/extractive`.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aisdk.components.gateway.local import CHAT_MODEL, EMBEDDING_MODEL

ENV_MODELS = "AISDK_GATEWAY_MODELS"
ENV_MODEL = "AISDK_GATEWAY_MODEL"
ENV_API_BASE = "AISDK_GATEWAY_API_BASE"
ENV_API_KEY = "AISDK_GATEWAY_API_KEY"
_ENV_REF = "os.environ/"


class ModelListError(ValueError):
    """A model list that cannot be used; the message names the entry."""


@dataclass(frozen=True, slots=True)
class Deployment:
    """One way to serve a model: litellm's parameters, under a unique id."""

    id: str
    model_name: str
    params: Mapping[str, Any]

    @property
    def provider(self) -> str:
        model = str(self.params["model"])
        return model.split("/", 1)[0] if "/" in model else "openai"


@dataclass(frozen=True, slots=True)
class ModelList:
    deployments: tuple[Deployment, ...]
    fallbacks: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return sorted({d.model_name for d in self.deployments})

    def chain(self, model_name: str) -> list[Deployment]:
        """Every deployment to try for model_name, in order (each once)."""
        order: list[str] = []
        todo = [model_name]
        while todo:
            name = todo.pop(0)
            if name not in order:
                order.append(name)
                todo.extend(self.fallbacks.get(name, ()))
        return [d for name in order for d in self.deployments if d.model_name == name]

    def router_list(self) -> list[dict[str, Any]]:
        """litellm Router's model_list, one group per deployment: the gateway
        walks the chain itself, so that a deployment whose circuit is open is
        skipped; the Router retries one deployment with backoff."""
        return [{"model_name": d.id, "litellm_params": dict(d.params)} for d in self.deployments]


def _resolve(value: Any) -> Any:
    """litellm's `os.environ/NAME` convention, resolved at load time."""
    if isinstance(value, str) and value.startswith(_ENV_REF):
        return os.environ.get(value.removeprefix(_ENV_REF), "")
    return value


def _read(path: Path) -> Mapping[str, Any]:
    try:
        text = path.read_text()
    except OSError as e:
        raise ModelListError(f"cannot read the model list {path}: {e.strerror}") from None
    try:
        if path.suffix == ".toml":
            return tomllib.loads(text)
        import yaml  # type: ignore[import-untyped]

        data = yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, ValueError) as e:
        raise ModelListError(f"{path} is not valid {path.suffix.lstrip('.').upper()}: {e}") from None
    if not isinstance(data, Mapping):
        raise ModelListError(f"{path}: expected a mapping with model_list")
    return data


def parse(data: Mapping[str, Any], where: str = "model list") -> ModelList:
    entries = data.get("model_list", [])
    if not isinstance(entries, Sequence):
        raise ModelListError(f"{where}: model_list must be a list")
    deployments: list[Deployment] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("model_name"), str):
            raise ModelListError(f"{where}: model_list[{i}] needs a model_name")
        params = entry.get("litellm_params")
        if not isinstance(params, Mapping) or not isinstance(params.get("model"), str):
            raise ModelListError(f"{where}: model_list[{i}] ({entry['model_name']}) needs litellm_params.model")
        resolved = {k: _resolve(v) for k, v in params.items()}
        deployments.append(Deployment(f"{entry['model_name']}#{i}", entry["model_name"], resolved))
    raw_fallbacks = data.get("fallbacks", {})
    if not isinstance(raw_fallbacks, Mapping):
        raise ModelListError(f"{where}: fallbacks must map a model name to a list of model names")
    fallbacks = {str(k): tuple(str(x) for x in ([v] if isinstance(v, str) else v)) for k, v in raw_fallbacks.items()}
    known = {d.model_name for d in deployments} | {CHAT_MODEL, EMBEDDING_MODEL}
    unknown = sorted({n for names in fallbacks.values() for n in names} - known)
    if unknown:
        raise ModelListError(f"{where}: fallbacks name models that have no deployment: {', '.join(unknown)}")
    return with_local(ModelList(tuple(deployments), fallbacks))


def with_local(models: ModelList) -> ModelList:
    """The local models are always served, so the offline default works."""
    present = {d.model_name for d in models.deployments}
    extra = [
        Deployment(f"{name}#local", name, {"model": name})
        for name in (CHAT_MODEL, EMBEDDING_MODEL)
        if name not in present
    ]
    return ModelList(models.deployments + tuple(extra), models.fallbacks)


def from_env(env: Mapping[str, str] = os.environ) -> ModelList:
    path = env.get(ENV_MODELS)
    if path:
        return parse(_read(Path(path)), path)
    model = env.get(ENV_MODEL)
    if not model:
        return with_local(ModelList(()))
    params: dict[str, Any] = {"model": model}
    if env.get(ENV_API_BASE):
        params["api_base"] = env[ENV_API_BASE]
        # OpenAI-compatible local servers accept any key, but the client needs one.
        params["api_key"] = env.get(ENV_API_KEY, "none")
    elif env.get(ENV_API_KEY):
        params["api_key"] = env[ENV_API_KEY]
    return parse({"model_list": [{"model_name": model, "litellm_params": params}], "fallbacks": {model: [CHAT_MODEL]}})
