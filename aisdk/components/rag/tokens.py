"""Token counts for chunk sizes: tiktoken's cl100k_base, read from the
encoding files litellm ships, so counting never needs the network."""

from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path

import tiktoken

ENCODING = "cl100k_base"


def _bundled_cache() -> str | None:
    # Located without importing litellm, which takes seconds.
    spec = importlib.util.find_spec("litellm")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "litellm_core_utils" / "tokenizers"
    return str(folder) if folder.is_dir() else None


@functools.cache
def encoding() -> tiktoken.Encoding:
    if "TIKTOKEN_CACHE_DIR" not in os.environ:
        bundled = _bundled_cache()
        if bundled is not None:
            os.environ["TIKTOKEN_CACHE_DIR"] = bundled
    return tiktoken.get_encoding(ENCODING)


def count(text: str) -> int:
    return len(encoding().encode_ordinary(text))


def windows(text: str, size: int, overlap: int) -> list[str]:
    """Split text with no sentence boundary into pieces of at most `size`
    tokens, each repeating the last `overlap` tokens of the one before."""
    ids = encoding().encode_ordinary(text)
    step = max(1, size - overlap)
    return [encoding().decode(ids[i : i + size]) for i in range(0, max(1, len(ids) - overlap), step)]
