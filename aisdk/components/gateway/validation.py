"""Checks on a provider's answer before it is returned (the seed's
`gateway.validate`): not empty, not longer than allowed, and valid JSON
when the request asked for JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass

DEFAULT_MAX_CHARS = 1_000_000


@dataclass(frozen=True, slots=True)
class Verdict:
    passed: bool
    reason: str = ""
    # The seed's `validation.level`: which check decided.
    level: str = "basic"


def validate(text: str, *, want_json: bool, max_chars: int = DEFAULT_MAX_CHARS) -> Verdict:
    level = "json" if want_json else "basic"
    if not text.strip():
        return Verdict(False, "the answer is empty", level)
    if len(text) > max_chars:
        return Verdict(False, f"the answer has {len(text)} characters, more than the maximum of {max_chars}", level)
    if want_json:
        try:
            json.loads(text)
        except ValueError as e:
            return Verdict(False, f"the answer is not valid JSON: {e}", level)
    return Verdict(True, "", level)
