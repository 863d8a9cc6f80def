"""The agent framework: agents with addressed and broadcast messages, status
and a priority task queue (Agent), a typed tool registry and its executor,
memory with embeddings, the function-calling loop, and the agents service
(`aisdk serve agents`)."""

from components.agents.agent import Agent, queue_group
from components.agents.answering import AgentAnswer, answer
from components.agents.listing import AgentRow, list_agents
from components.agents.loop import AgentLoop, LoopAnswer
from components.agents.registry import Tool, ToolContext, ToolError, ToolRegistry
from components.agents.service import AgentsService
from components.agents.settings import Settings

__all__ = [
    "Agent", "AgentAnswer", "AgentLoop", "AgentRow", "AgentsService", "LoopAnswer", "Settings", "Tool",
    "ToolContext", "ToolError", "ToolRegistry", "answer", "list_agents", "queue_group",
]
