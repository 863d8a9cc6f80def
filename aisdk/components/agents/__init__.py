"""The agent framework: agents with addressed and broadcast messages, status
and a priority task queue (Agent), a typed tool registry and its executor,
memory with embeddings, the function-calling loop, and the agents service
(`aisdk serve agents`)."""

from aisdk.components.agents.agent import Agent, queue_group
from aisdk.components.agents.answering import AgentAnswer, answer
from aisdk.components.agents.listing import AgentRow, list_agents
from aisdk.components.agents.loop import AgentLoop, LoopAnswer
from aisdk.components.agents.registry import Tool, ToolContext, ToolError, ToolRegistry
from aisdk.components.agents.service import AgentsService
from aisdk.components.agents.settings import Settings

__all__ = [
    "Agent", "AgentAnswer", "AgentLoop", "AgentRow", "AgentsService", "LoopAnswer", "Settings", "Tool",
    "ToolContext", "ToolError", "ToolRegistry", "answer", "list_agents", "queue_group",
]
