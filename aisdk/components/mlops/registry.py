"""The SQL of MLOps: the model registry, training jobs and deployments."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from aisdk.components.mlops.artifacts import Artifact
from aisdk.components.storage import Connection

RUNNING, SUCCEEDED, FAILED = "running", "succeeded", "failed"


@dataclass(frozen=True, slots=True)
class Version:
    version: int
    job_id: str
    model_type: str
    training_data: str
    metrics: dict[str, float]
    feature_names: list[str]
    classes: list[str]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Job:
    job_id: str
    model_id: str
    state: str
    version: int | None
    error: str
    attempt: int


async def begin_job(conn: Connection, tenant: str, job_id: str, model_id: str, attempt: int) -> Job | None:
    """Claim the running job for this delivery (its attempt); None if it
    now runs under this attempt. Otherwise its record: finished (a
    redelivery of a job that already ran), or running under a later attempt
    (this delivery is stale and must leave it).

    A later attempt takes a running job over: JetStream redelivers only once
    the earlier delivery's ack wait lapsed without a heartbeat, so the
    earlier one is taken for dead; if it is alive after all, its finish is
    refused (`add_version` and `fail_job` match the attempt)."""
    await conn.execute(
        "INSERT INTO mlops_jobs AS j (tenant_id, job_id, model_id, state, attempt)"
        " VALUES (%s, %s, %s, 'running', %s)"
        " ON CONFLICT (tenant_id, job_id) DO UPDATE SET attempt = EXCLUDED.attempt"
        " WHERE j.state = 'running' AND j.attempt < EXCLUDED.attempt",
        (tenant, job_id, model_id, attempt),
    )
    job = await find_job(conn, tenant, job_id)
    assert job is not None
    return None if job.state == RUNNING and job.attempt == attempt else job


async def _finish(conn: Connection, tenant: str, job_id: str, attempt: int) -> bool:
    """Fence a finish: only the attempt that owns the running job may."""
    cur = await conn.execute(
        "SELECT 1 FROM mlops_jobs WHERE tenant_id = %s AND job_id = %s AND state = 'running' AND attempt = %s"
        " FOR UPDATE",
        (tenant, job_id, attempt),
    )
    return await cur.fetchone() is not None


async def fail_job(conn: Connection, tenant: str, job_id: str, attempt: int, error: str) -> bool:
    """Record the failure; False if another attempt owns the job (nothing written)."""
    cur = await conn.execute(
        "UPDATE mlops_jobs SET state = 'failed', error = %s, finished_at = now()"
        " WHERE tenant_id = %s AND job_id = %s AND state = 'running' AND attempt = %s",
        (error, tenant, job_id, attempt),
    )
    return cur.rowcount == 1


async def add_version(
    conn: Connection, tenant: str, model_id: str, job_id: str, attempt: int, model_type: str, training_data: str,
    parameters: dict[str, Any], metrics: dict[str, float], feature_names: list[str], classes: list[str],
    artifact: Artifact,
) -> int | None:
    """Store the model's next version and finish its job; call inside a
    transaction. The model row's lock numbers concurrent versions in turn.
    None, and nothing stored, if this attempt no longer owns the job."""
    if not await _finish(conn, tenant, job_id, attempt):
        return None
    await conn.execute(
        "INSERT INTO mlops_models (tenant_id, model_id) VALUES (%s, %s) ON CONFLICT DO NOTHING", (tenant, model_id)
    )
    cur = await conn.execute(
        "UPDATE mlops_models SET versions = versions + 1 WHERE tenant_id = %s AND model_id = %s RETURNING versions",
        (tenant, model_id),
    )
    row = await cur.fetchone()
    assert row is not None
    version = int(row[0])
    await conn.execute(
        """
        INSERT INTO mlops_model_versions (tenant_id, model_id, version, job_id, model_type, training_data,
            parameters, metrics, feature_names, classes, artifact, artifact_sha256, sklearn_version)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
        """,
        (tenant, model_id, version, job_id, model_type, training_data, Jsonb(parameters), Jsonb(metrics),
         feature_names, classes, artifact.data, artifact.sha256, artifact.sklearn_version),
    )
    await conn.execute(
        "UPDATE mlops_jobs SET state = 'succeeded', version = %s, error = '', finished_at = now()"
        " WHERE tenant_id = %s AND job_id = %s",
        (version, tenant, job_id),
    )
    return version


async def find_job(conn: Connection, tenant: str, job_id: str) -> Job | None:
    cur = await conn.execute(
        "SELECT model_id, state, version, error, attempt FROM mlops_jobs WHERE tenant_id = %s AND job_id = %s",
        (tenant, job_id),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    return Job(job_id, str(row[0]), str(row[1]), None if row[2] is None else int(row[2]), str(row[3]), int(row[4]))


_VERSION_COLUMNS = "version, job_id, model_type, training_data, metrics, feature_names, classes, created_at"


def _version(row: tuple[Any, ...]) -> Version:
    return Version(int(row[0]), str(row[1]), str(row[2]), str(row[3]),
                   {str(k): float(v) for k, v in dict(row[4]).items()}, list(row[5]), list(row[6]), row[7])


async def versions(conn: Connection, tenant: str, model_id: str) -> list[Version]:
    cur = await conn.execute(
        f"SELECT {_VERSION_COLUMNS} FROM mlops_model_versions WHERE tenant_id = %s AND model_id = %s ORDER BY version",
        (tenant, model_id),
    )
    return [_version(r) for r in await cur.fetchall()]


async def find_version(conn: Connection, tenant: str, model_id: str, version: int) -> Version | None:
    cur = await conn.execute(
        f"SELECT {_VERSION_COLUMNS} FROM mlops_model_versions WHERE tenant_id = %s AND model_id = %s AND version = %s",
        (tenant, model_id, version),
    )
    row = await cur.fetchone()
    return None if row is None else _version(row)


async def artifact(conn: Connection, tenant: str, model_id: str, version: int) -> Artifact | None:
    cur = await conn.execute(
        "SELECT artifact, artifact_sha256, sklearn_version FROM mlops_model_versions"
        " WHERE tenant_id = %s AND model_id = %s AND version = %s",
        (tenant, model_id, version),
    )
    row = await cur.fetchone()
    return None if row is None else Artifact(bytes(row[0]), str(row[1]), str(row[2]))


async def deployed(conn: Connection, tenant: str, model_id: str, environment: str) -> int | None:
    cur = await conn.execute(
        "SELECT version FROM mlops_deployments WHERE tenant_id = %s AND model_id = %s AND environment = %s",
        (tenant, model_id, environment),
    )
    row = await cur.fetchone()
    return None if row is None else int(row[0])


async def record_deployment(conn: Connection, tenant: str, deployment_id: str, model_id: str, version: str,
                            environment: str, state: int, promoted: bool) -> bool:
    """Note the event once; False if it was applied before."""
    cur = await conn.execute(
        """
        INSERT INTO mlops_deployment_events (tenant_id, deployment_id, model_id, version, environment, state, promoted)
        VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING
        """,
        (tenant, deployment_id, model_id, version, environment, state, promoted),
    )
    return cur.rowcount == 1


async def promote(conn: Connection, tenant: str, model_id: str, environment: str, version: int,
                  deployment_id: str) -> None:
    await conn.execute(
        """
        INSERT INTO mlops_deployments (tenant_id, model_id, environment, version, deployment_id)
        VALUES (%s, %s, %s, %s, %s)
        ON CONFLICT (tenant_id, model_id, environment) DO UPDATE
        SET version = EXCLUDED.version, deployment_id = EXCLUDED.deployment_id, deployed_at = now()
        """,
        (tenant, model_id, environment, version, deployment_id),
    )
