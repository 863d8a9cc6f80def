"""Sections to chunks: sentences packed up to a token budget, never across a
heading, each chunk starting with the last sentences of the one before (the
overlap) so that an answer spanning a boundary is still found whole."""

from __future__ import annotations

from dataclasses import dataclass

from aisdk.components.rag import sentences, tokens
from aisdk.components.rag.parsing import Section


@dataclass(frozen=True, slots=True)
class ChunkText:
    ordinal: int
    heading: str
    text: str
    token_count: int

    @property
    def indexed_text(self) -> str:
        """What is embedded and searched: the heading gives a chunk its topic."""
        return f"{self.heading}\n{self.text}" if self.heading else self.text


@dataclass(frozen=True, slots=True)
class ChunkSizes:
    max_tokens: int = 256
    overlap_tokens: int = 40

    def __post_init__(self) -> None:
        if self.max_tokens < 16:
            raise ValueError(f"chunks of {self.max_tokens} tokens are too small (at least 16)")
        if not 0 <= self.overlap_tokens < self.max_tokens // 2:
            raise ValueError(f"overlap of {self.overlap_tokens} tokens must be below half of {self.max_tokens}")


def _units(section: Section, sizes: ChunkSizes) -> list[tuple[str, int]]:
    """Sentences with their token counts; a sentence over the budget is cut
    into token windows."""
    out: list[tuple[str, int]] = []
    for paragraph in section.paragraphs:
        for sentence in sentences.split(paragraph):
            n = tokens.count(sentence)
            if n <= sizes.max_tokens:
                out.append((sentence, n))
            else:
                out.extend((w, tokens.count(w)) for w in tokens.windows(sentence, sizes.max_tokens,
                                                                          sizes.overlap_tokens))
    return out


def _pack(units: list[tuple[str, int]], sizes: ChunkSizes) -> list[list[tuple[str, int]]]:
    chunks: list[list[tuple[str, int]]] = []
    current: list[tuple[str, int]] = []
    fresh = 0  # units in `current` that no earlier chunk holds
    for unit in units:
        if fresh and sum(n for _, n in current) + unit[1] + len(current) > sizes.max_tokens:
            chunks.append(current)
            # Carry the trailing sentences that fit in the overlap budget.
            carried: list[tuple[str, int]] = []
            for prev in reversed(current):
                if sum(n for _, n in carried) + prev[1] > sizes.overlap_tokens:
                    break
                carried.insert(0, prev)
            if sum(n for _, n in carried) + unit[1] + len(carried) > sizes.max_tokens:
                carried = []
            current, fresh = carried, 0
        current.append(unit)
        fresh += 1
    if fresh:
        chunks.append(current)
    return chunks


def chunk(sections: list[Section], sizes: ChunkSizes = ChunkSizes()) -> list[ChunkText]:
    out: list[ChunkText] = []
    for section in sections:
        for packed in _pack(_units(section, sizes), sizes):
            text = " ".join(s for s, _ in packed)
            out.append(ChunkText(len(out), section.heading, text, tokens.count(text)))
    return out
