"""The model list: which deployments serve a model name, in fallback order.

Components ask for aliases, not models: `chat` (answers) and `embedding`
(vectors). The model list decides what serves them, so one setting moves
the whole deployment. Without configuration `chat` is `local/extractive` and
`embedding` is `local/wordllama`, and both local models stay servable by
their own names.

From a YAML or TOML file (`AISDK_GATEWAY_MODELS`), in litellm's own
`model_list` shape:

    model_list:
      - model_name: chat
        litellm_params: {model: openai/gpt-4o-mini, api_key: os.environ/OPENAI_API_KEY}
    fallbacks:
      chat: [local/extractive]

Deployments that share a model_name are tried in file order; then the
models named in `fallbacks`, and nothing else: a fallback is only ever
where the list says so. An alias the file leaves out keeps its local
default. A deployment is also served under its provider model's name
(`openai/gpt-4o-mini` above), so a component may ask for the model itself.

Without a file, environment variables cover the common case:
AISDK_GATEWAY_MODEL moves `chat`, AISDK_GATEWAY_EMBEDDING_MODEL moves
`embedding` (both with AISDK_GATEWAY_API_BASE and AISDK_GATEWAY_API_KEY),
and AISDK_GATEWAY_FALLBACK names what `chat` falls back to (e.g.
`local/extractive`).
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
ENV_EMBEDDING_MODEL = "AISDK_GATEWAY_EMBEDDING_MODEL"
ENV_FALLBACK = "AISDK_GATEWAY_FALLBACK"
# The names components ask for, and what serves them without configuration.
CHAT = "chat"
EMBEDDING = "embedding"
ALIASES = {CHAT: CHAT_MODEL, EMBEDDING: EMBEDDING_MODEL}
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
    def model(self) -> str:
        """The provider's model (litellm_params.model): what answers."""
        return str(self.params["model"])

    @property
    def identity(self) -> str:
        """What names this deployment across workers (its breaker's shared
        state): the id, the provider model and the endpoint, never a key.
        Two gateways with other model lists on one NATS do not mix states."""
        return f"{self.id}|{self.model}|{self.params.get('api_base') or ''}"

    @property
    def provider(self) -> str:
        return self.model.split("/", 1)[0] if "/" in self.model else "openai"


@dataclass(frozen=True, slots=True)
class ModelList:
    deployments: tuple[Deployment, ...]
    fallbacks: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return sorted({d.model_name for d in self.deployments} | {d.model for d in self.deployments})

    def _serving(self, name: str) -> list[Deployment]:
        """The deployments of a model name, else those of that provider model."""
        named = [d for d in self.deployments if d.model_name == name]
        return named or [d for d in self.deployments if d.model == name]

    def chain(self, model_name: str) -> list[Deployment]:
        """Every deployment to try for model_name, in order (each once): the
        first is the one that serves it, the rest are its fallbacks."""
        order: list[str] = []
        todo = [model_name]
        while todo:
            name = todo.pop(0)
            if name not in order:
                order.append(name)
                todo.extend(self.fallbacks.get(name, ()))
        chain: list[Deployment] = []
        for name in order:
            chain.extend(d for d in self._serving(name) if d not in chain)
        return chain

    def resolve(self, model_name: str) -> str:
        """The provider model that serves model_name when nothing fails
        (`chat` -> `local/extractive` offline); the name itself when no
        deployment serves it. Token counting and index fingerprints use it."""
        chain = self.chain(model_name)
        return chain[0].model if chain else model_name


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
    models = with_local(ModelList(tuple(deployments), fallbacks))
    unknown = sorted({n for names in fallbacks.values() for n in names} - set(models.names))
    if unknown:
        raise ModelListError(f"{where}: fallbacks name models that have no deployment: {', '.join(unknown)}")
    return models


def with_local(models: ModelList) -> ModelList:
    """The local models are always served, so the offline default works, and
    an alias the list leaves out is served by its local model."""
    present = {d.model_name for d in models.deployments}
    extra = [
        Deployment(f"{name}#local", name, {"model": name})
        for name in (CHAT_MODEL, EMBEDDING_MODEL)
        if name not in present
    ] + [
        Deployment(f"{alias}#local", alias, {"model": model})
        for alias, model in ALIASES.items()
        if alias not in present
    ]
    return ModelList(models.deployments + tuple(extra), models.fallbacks)


def _provider_params(env: Mapping[str, str], model: str) -> dict[str, Any]:
    params: dict[str, Any] = {"model": model}
    if env.get(ENV_API_BASE):
        params["api_base"] = env[ENV_API_BASE]
        # OpenAI-compatible local servers accept any key, but the client needs one.
        params["api_key"] = env.get(ENV_API_KEY, "none")
    elif env.get(ENV_API_KEY):
        params["api_key"] = env[ENV_API_KEY]
    return params


def from_env(env: Mapping[str, str] = os.environ) -> ModelList:
    """The model list of this deployment. Every component that must know what
    an alias resolves to (the prompt service's tokenizer, RAG's index
    fingerprint) reads it from the same variables as the gateway."""
    chat, embedding = env.get(ENV_MODEL, "").strip(), env.get(ENV_EMBEDDING_MODEL, "").strip()
    fallback = [n.strip() for n in env.get(ENV_FALLBACK, "").split(",") if n.strip()]
    path = env.get(ENV_MODELS)
    if path:
        ignored = [name for name in (ENV_MODEL, ENV_EMBEDDING_MODEL, ENV_FALLBACK) if env.get(name, "").strip()]
        if ignored:
            raise ModelListError(f"{ENV_MODELS} names a model list, so {', '.join(ignored)} would be ignored: "
                                 "define the aliases in the file, or unset one or the other")
        return parse(_read(Path(path)), path)
    if fallback and not chat:
        raise ModelListError(f"{ENV_FALLBACK} is set without {ENV_MODEL}: `chat` is already the offline "
                             f"{CHAT_MODEL}, there is nothing to fall back from")
    if not (chat or embedding) and (env.get(ENV_API_BASE) or env.get(ENV_API_KEY)):
        raise ModelListError(f"{ENV_API_BASE}/{ENV_API_KEY} are set but no {ENV_MODEL} or {ENV_EMBEDDING_MODEL} "
                             "uses them")
    entries = [{"model_name": alias, "litellm_params": _provider_params(env, model)}
               for alias, model in ((CHAT, chat), (EMBEDDING, embedding)) if model]
    where = f"{ENV_FALLBACK}={env.get(ENV_FALLBACK, '')!r}"
    return parse({"model_list": entries, "fallbacks": {CHAT: fallback} if fallback else {}}, where)
