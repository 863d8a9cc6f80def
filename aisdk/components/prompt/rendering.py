"""Rendering a template with its variables and retrieved snippets, fitted
into a token budget by dropping the least relevant (last) snippets."""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

CONTEXT_VARIABLE = "context"
SNIPPET_SEPARATOR = "\n\n"


class MissingVariables(ValueError):
    def __init__(self, names: list[str]) -> None:
        self.names = names
        super().__init__(f"missing template variables: {', '.join(names)}")


class OverBudget(ValueError):
    def __init__(self, tokens: int, budget: int) -> None:
        self.tokens = tokens
        self.budget = budget
        super().__init__(f"the template alone needs {tokens} tokens, over the budget of {budget}")


@dataclass(frozen=True, slots=True)
class Rendered:
    prompt: str
    tokens: int
    dropped: int


def fields(template: str) -> set[str]:
    """The {variable} slots of a template."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def render(
    template: str,
    values: Mapping[str, str],
    snippets: Sequence[str],
    max_tokens: int,
    count: Callable[[str], int],
) -> Rendered:
    """The prompt with as many leading snippets as fit `max_tokens` (0: no
    limit). Snippets go into {context}, or after the text without that slot."""
    slots = fields(template)
    missing = sorted(slots - values.keys() - {CONTEXT_VARIABLE})
    if missing:
        raise MissingVariables(missing)

    def with_snippets(n: int) -> str:
        joined = SNIPPET_SEPARATOR.join(snippets[:n])
        text = template.format_map({**values, CONTEXT_VARIABLE: joined})
        return text if CONTEXT_VARIABLE in slots or not joined else f"{text}{SNIPPET_SEPARATOR}{joined}"

    prompt = with_snippets(len(snippets))
    tokens = count(prompt)
    if not max_tokens or tokens <= max_tokens:
        return Rendered(prompt, tokens, 0)
    # More snippets never make fewer tokens: search for the most that fit, in
    # log(n) counts rather than one per dropped snippet.
    low, high = 0, len(snippets) - 1
    best: Rendered | None = None
    while low <= high:
        mid = (low + high) // 2
        text = with_snippets(mid)
        n = count(text)
        if n <= max_tokens:
            best = Rendered(text, n, len(snippets) - mid)
            low = mid + 1
        else:
            high = mid - 1
    if best is None:
        bare = with_snippets(0)
        raise OverBudget(count(bare), max_tokens)
    return best
