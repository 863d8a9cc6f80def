"""The SQL of prompt management: every version of every template, per tenant."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg.types.json import Jsonb

from ai.prompt.v1 import prompt_bus, prompt_pb2
from aisdk.components.storage import Connection
# Applied message ids are remembered at least as long as the stream keeps
# the events: a consumer created later replays what the stream still holds,
# and each of those must be recognised as applied.
_STREAM = prompt_bus.PROMPT_TEMPLATES.durability
PUBLICATIONS_KEPT_S = max(86_400, _STREAM.max_age_s if _STREAM is not None else 0)


@dataclass(frozen=True, slots=True)
class Template:
    template_id: str
    version: str
    text: str
    variables: dict[str, str]


async def publish(
    conn: Connection, tenant: str, message_id: str, t: prompt_pb2.PromptTemplate, published_us: int
) -> bool:
    """Store the template once per publication; True if this call stored it.
    Call inside a transaction.

    `published_us` (the envelope's time) orders publications: workers sharing
    the durable consumer apply events in parallel, and a redelivery can come
    after a later event, so the order of arrival is not the order published.
    A version becomes the latest only if published after what is stored."""
    if message_id:
        cur = await conn.execute(
            "INSERT INTO prompt_publications (tenant_id, message_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            (tenant, message_id),
        )
        if cur.rowcount == 0:
            return False
        await conn.execute(
            "DELETE FROM prompt_publications WHERE applied_at < now() - make_interval(secs => %s)",
            (PUBLICATIONS_KEPT_S,),
        )
    await conn.execute(
        """
        INSERT INTO prompt_templates (tenant_id, template_id, version, template, variables, publication)
        VALUES (%s, %s, %s, %s, %s, %s)
        ON CONFLICT (tenant_id, template_id, version) DO UPDATE
        SET template = EXCLUDED.template, variables = EXCLUDED.variables,
            publication = EXCLUDED.publication, published_at = now()
        WHERE prompt_templates.publication < EXCLUDED.publication
        """,
        (tenant, t.template_id, t.version, t.template, Jsonb(dict(t.variables)), published_us),
    )
    return True


async def find(conn: Connection, tenant: str, template_id: str, version: str) -> Template | None:
    """The named version, or the latest one when `version` is empty."""
    query = "SELECT version, template, variables FROM prompt_templates WHERE tenant_id = %s AND template_id = %s"
    if version:
        cur = await conn.execute(query + " AND version = %s", (tenant, template_id, version))
    else:
        cur = await conn.execute(query + " ORDER BY publication DESC LIMIT 1", (tenant, template_id))
    row = await cur.fetchone()
    if row is None:
        return None
    return Template(template_id, str(row[0]), str(row[1]), {str(k): str(v) for k, v in dict(row[2]).items()})


async def has_template(conn: Connection, tenant: str, template_id: str) -> bool:
    cur = await conn.execute(
        "SELECT 1 FROM prompt_templates WHERE tenant_id = %s AND template_id = %s LIMIT 1", (tenant, template_id)
    )
    return await cur.fetchone() is not None
