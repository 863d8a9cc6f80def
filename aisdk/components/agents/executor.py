"""Tool execution for agent.tools: one call id runs once per tenant.

The record of executed calls is in PostgreSQL (agent_tool_calls): a call is
run under a transaction-scoped advisory lock on (tenant, call id) and its
result is written in the same transaction. A redelivered or repeated call
waits for the lock, finds the result and returns it without running the
tool; a call whose executor died mid-run left no record and runs again."""

from __future__ import annotations

import time

from ai.agent.v1 import agent_pb2
from google.protobuf import duration_pb2
from opentelemetry.util.types import AttributeValue

from aisdk.components.agents.registry import ToolContext, ToolRegistry, from_struct, to_struct
from aisdk.components.gateway import genai
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as GA
from aisdk.components.agents.sql import Pool
from runtime.contract import Context, Transport
from runtime.telemetry import Telemetry
from runtime.telemetry.names import ATTR, METRIC, SPAN

MAX_ERROR = 4096


def _duration(seconds: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromNanoseconds(int(seconds * 1e9))
    return d


class ToolRunner:
    def __init__(self, registry: ToolRegistry, pool: Pool, bus: Transport, tel: Telemetry) -> None:
        self.registry = registry
        self._pool = pool
        self._bus = bus
        self._tel = tel
        # Runs of the tools in this process (a replayed call is not a run).
        self.runs = 0

    async def __call__(self, request: agent_pb2.ToolExecutionRequest, ctx: Context) -> agent_pb2.ToolExecutionResult:
        tenant = ctx.tenant_id
        tool = self.registry.get(request.tool_name)
        if tool is None:
            # Not recorded: an executor that knows the tool may answer a retry.
            known = ", ".join(self.registry.names) or "none"
            return agent_pb2.ToolExecutionResult(
                call_id=request.call_id, tool_name=request.tool_name, success=False,
                error=f"unknown tool {request.tool_name!r}; this executor has: {known}")
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                               (f"agent-tool:{tenant}:{request.call_id}",))
            cur = await conn.execute("SELECT result FROM agent_tool_calls WHERE tenant_id = %s AND call_id = %s",
                                     (tenant, request.call_id))
            row = await cur.fetchone()
            if row is not None:
                return agent_pb2.ToolExecutionResult.FromString(row[0])
            result = await self._run(request, ctx)
            await conn.execute(
                "INSERT INTO agent_tool_calls (tenant_id, call_id, tool_name, result) VALUES (%s, %s, %s, %s)",
                (tenant, request.call_id, request.tool_name, result.SerializeToString()))
        return result

    async def _run(self, request: agent_pb2.ToolExecutionRequest, ctx: Context) -> agent_pb2.ToolExecutionResult:
        """Run the tool; whatever it raises becomes an error result."""
        tool = self.registry.get(request.tool_name)
        assert tool is not None
        attrs: dict[str, AttributeValue] = {ATTR.TENANT_ID: ctx.tenant_id, "agent.id": request.agent_id,
                                            "tool.name": request.tool_name, "tool.call_id": request.call_id,
                                            GA.GEN_AI_OPERATION_NAME: genai.EXECUTE_TOOL,
                                            GA.GEN_AI_TOOL_NAME: request.tool_name,
                                            GA.GEN_AI_TOOL_CALL_ID: request.call_id,
                                            GA.GEN_AI_AGENT_ID: request.agent_id}
        result = agent_pb2.ToolExecutionResult(call_id=request.call_id, tool_name=request.tool_name)
        t0 = time.perf_counter()
        self.runs += 1
        with self._tel.span(SPAN.AGENT_TOOL_EXECUTE, attrs) as span:
            try:
                value = await tool(ToolContext(self._bus, ctx.tenant_id, request.agent_id, request.call_id,
                                               request.idempotency_key),
                                   from_struct(request.arguments))
                result.output.CopyFrom(to_struct(value))
                result.success = True
            except Exception as e:  # noqa: BLE001 - a failing tool is an error result, never a failed executor
                result.success = False
                result.error = f"{type(e).__name__}: {e}"[:MAX_ERROR]
            span.set_attribute("tool.success", result.success)
        elapsed = time.perf_counter() - t0
        result.duration.CopyFrom(_duration(elapsed))
        status = "success" if result.success else "error"
        self._tel.metrics.counter(METRIC.AGENT_TOOLS_EXECUTED).add(
            1, {ATTR.TENANT_ID: ctx.tenant_id, "tool.name": request.tool_name, "status": status})
        self._tel.metrics.histogram(METRIC.AGENT_TOOL_DURATION).record(
            elapsed, {ATTR.TENANT_ID: ctx.tenant_id, "tool.name": request.tool_name})
        return result
