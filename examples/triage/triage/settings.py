"""The service's configuration, each field overridable by a TRIAGE_*
environment variable (TRIAGE_MODEL_ID, TRIAGE_REVIEW_BELOW, ...)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields


@dataclass(frozen=True, slots=True)
class Settings:
    # The MLOps registry name of the classifier (`python -m triage setup` trains it).
    model_id: str = "triage-tickets"
    # Below this confidence a person routes the ticket, and retrieval searches
    # every category instead of the predicted one.
    review_below: float = 0.5
    # Passages retrieved for the draft.
    top_k: int = 3
    # The model that drafts the reply: the gateway's `chat` alias, so that it
    # moves with the deployment's model setting (offline by default).
    answer_model: str = "chat"
    # {context}, {category} and {ticket} are filled in. No instructions: the
    # offline model answers with the prompt's own sentences and would quote
    # them. With a hosted model, set TRIAGE_TEMPLATE to one that has some.
    template: str = "Knowledge base:\n{context}\n\nTicket ({category}): {ticket}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(f"TRIAGE_{f.name.upper()}")
            if raw is None:
                continue
            kind = type(getattr(cls(), f.name))
            try:
                values[f.name] = kind(raw)
            except ValueError as e:
                raise ValueError(f"TRIAGE_{f.name.upper()}={raw!r}: expected {kind.__name__}") from e
        settings = cls(**values)  # type: ignore[arg-type]
        if not 0 <= settings.review_below <= 1:
            raise ValueError(f"TRIAGE_REVIEW_BELOW must be between 0 and 1, not {settings.review_below}")
        if not 1 <= settings.top_k <= 20:
            raise ValueError(f"TRIAGE_TOP_K must be between 1 and 20, not {settings.top_k}")
        return settings
