"""LLMOps (`aisdk serve llmops`): operation logging, usage reports and budgets in PostgreSQL."""

from aisdk.components.llmops.service import LlmOps

__all__ = ["LlmOps"]
