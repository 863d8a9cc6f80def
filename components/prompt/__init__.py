"""Prompt management (`aisdk serve prompt`): versioned templates in PostgreSQL,
context building with the gateway's tokenizer."""

from components.prompt.service import PromptManager

__all__ = ["PromptManager"]
