"""The BM25 baseline: bm25s (a maintained BM25 library) over the same chunks
the RAG worker searches, with an English stemmer and stop words, as a
keyword search engine would rank them."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from aisdk.cli.extras import EVAL, require


class Bm25:
    def __init__(self, chunks: Sequence[tuple[str, str, str, str]]) -> None:
        require("aisdk eval", EVAL, ("bm25s", "Stemmer"))
        import bm25s  # type: ignore[import-untyped]
        import Stemmer  # type: ignore[import-not-found]

        # bm25s sets its logger to DEBUG on import; its lines are not ours to print.
        logging.getLogger("bm25s").setLevel(logging.WARNING)
        self._bm25s: Any = bm25s
        self._stemmer = Stemmer.Stemmer("english")
        self._ids = [(document_id, chunk_id) for document_id, chunk_id, _, _ in chunks]
        corpus = [f"{heading} {content}" for _, _, heading, content in chunks]
        self._index = bm25s.BM25()
        self._index.index(self._tokens(corpus), show_progress=False)

    def _tokens(self, texts: list[str]) -> Any:
        return self._bm25s.tokenize(texts, stopwords="en", stemmer=self._stemmer, show_progress=False)

    def search(self, question: str, k: int) -> list[tuple[str, str]]:
        """(document id, chunk id) of the k best chunks, best first; chunks
        that share no term with the question are left out."""
        if not self._ids:
            return []
        found, scores = self._index.retrieve(self._tokens([question]), k=min(k, len(self._ids)),
                                             show_progress=False)
        return [self._ids[int(i)] for i, score in zip(found[0], scores[0]) if score > 0]
