"""What a tenant needs before the first ticket, done over the bus with the
platform's clients: the classifier trained on the labelled tickets and
deployed in MLOps, and the knowledge base ingested into RAG. Running it
again trains and deploys a new version and re-ingests only what changed."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from ai.mlops.v1 import mlops_bus, mlops_pb2
from ai.rag.v1 import rag_bus, rag_pb2

from runtime import Bus, Observed, RemoteError
from triage import features
from triage.settings import Settings

HERE = Path(__file__).resolve().parent.parent
TICKETS = HERE / "data" / "tickets.csv"
KNOWLEDGE_BASE = HERE / "kb"
# Logistic regression, sharpened (C) for a vocabulary this small.
MODEL_TYPE = "logistic_regression"
PARAMETERS: dict[str, float] = {"C": 10.0, "max_iter": 1000.0}
WAIT = 120.0
State = rag_pb2.IngestState
FINAL = (State.INGEST_STATE_INDEXED, State.INGEST_STATE_FAILED)


class BootstrapError(Exception):
    """Training, deploying or ingesting failed; the message says which and why."""


@dataclass(frozen=True, slots=True)
class Model:
    model_id: str
    version: str
    accuracy: float


async def _until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = WAIT) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise BootstrapError(f"{what}: not done within {timeout:g} s")
        await asyncio.sleep(0.1)


async def train_and_deploy(bus: Bus, tenant: str, data_dir: Path, settings: Settings | None = None,
                           tickets: Path = TICKETS) -> Model:
    """Write the training data where the MLOps workers read it (their
    AISDK_MLOPS_DATA_DIR), train a new version of the model, deploy it to
    the predictors' environment and wait until it answers."""
    model_id = (settings or Settings()).model_id
    csv_name = f"{model_id}.csv"
    features.write_training_csv(features.labelled(tickets), data_dir / csv_name)
    client = mlops_bus.MlopsServiceClient(bus, tenant)
    job = mlops_pb2.TrainingJob(job_id=f"{model_id}-{uuid.uuid4().hex[:12]}", model_type=MODEL_TYPE,
                                training_data=f"file:{csv_name}", model_id=model_id)
    job.parameters.update(PARAMETERS)
    await client.training(job)
    status = mlops_pb2.TrainingStatus()

    async def trained() -> bool:
        try:
            status.CopyFrom(await client.jobs(mlops_pb2.TrainingQuery(request_id=job.job_id, job_id=job.job_id)))
        except RemoteError as e:
            if e.code_name == "CODE_NOT_FOUND":  # still queued
                return False
            raise
        return status.state != mlops_pb2.TRAINING_STATE_RUNNING

    await _until(trained, f"training job {job.job_id}")
    if status.state != mlops_pb2.TRAINING_STATE_SUCCEEDED:
        raise BootstrapError(f"training job {job.job_id} failed: {status.error}")
    registry = await client.models(mlops_pb2.ModelQuery(request_id=job.job_id, model_id=model_id))
    await client.deploy(mlops_pb2.ModelDeployment(
        deployment_id=f"{job.job_id}-deploy", model_id=model_id, model_version=status.model_version,
        environment=registry.environment, state=mlops_pb2.DEPLOYMENT_STATE_DEPLOYED))

    async def deployed() -> bool:
        registry.CopyFrom(await client.models(mlops_pb2.ModelQuery(request_id=job.job_id, model_id=model_id)))
        return registry.deployed_version == status.model_version

    await _until(deployed, f"deployment of {model_id} version {status.model_version}")
    version = next(v for v in registry.versions if v.version == status.model_version)
    return Model(model_id, status.model_version, version.metrics["accuracy"])


async def ingest(bus: Bus, tenant: str, folder: Path = KNOWLEDGE_BASE) -> dict[str, rag_pb2.IngestStatus]:
    """Send every article of the folder to RAG, its category (the file's
    stem) as metadata, and wait for each one's final status."""
    articles = sorted(folder.glob("*.md"))
    if not articles:
        raise BootstrapError(f"no articles (*.md) in {folder}")
    final: dict[str, rag_pb2.IngestStatus] = {}
    done = asyncio.Event()
    wanted = {a.stem for a in articles}

    async def on_status(seen: Observed) -> None:
        status = seen.payload
        if isinstance(status, rag_pb2.IngestStatus) and status.document_id in wanted and status.state in FINAL:
            final[status.document_id] = status
            if set(final) == wanted:
                done.set()

    # The bus owns the subscription: it goes with the bus.
    await bus.subscribe(rag_bus.RAG_STATUS, on_status, tenant_id=tenant)
    client = rag_bus.RagServiceClient(bus, tenant)
    for article in articles:
        await client.ingest(rag_pb2.RagDocument(
            document_id=article.stem, content=article.read_text(), content_type="text/markdown",
            source_uri=f"kb/{article.name}", metadata={"category": article.stem}))
    try:
        await asyncio.wait_for(done.wait(), WAIT)
    except TimeoutError:
        missing = ", ".join(sorted(wanted - set(final)))
        raise BootstrapError(f"articles not ingested within {WAIT:g} s: {missing}") from None
    failed = {name: s.error for name, s in final.items() if s.state == State.INGEST_STATE_FAILED}
    if failed:
        raise BootstrapError("; ".join(f"{name}: {error}" for name, error in sorted(failed.items())))
    return final
