"""Prompt management (`aisdk serve prompt`): versioned templates in PostgreSQL,
context building with the gateway's tokenizer."""

from aisdk.components.prompt.service import PromptManager

__all__ = ["PromptManager"]
