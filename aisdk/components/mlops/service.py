"""MLOps (`aisdk serve mlops`): scikit-learn training jobs from mlops.training,
a model registry with every version, its metrics and its artifact in
PostgreSQL, deployments from mlops.deploy, and predictions on
mlops.predictions answered by the deployed version.

All state is in the database. The deploy event is applied once (its durable
consumer is shared) and stored; every predictor reads the deployed version on
each request, so all of them switch at once and one started later serves it.
Loaded models are cached per version, which never changes once stored."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from google.protobuf import duration_pb2, json_format

from ai.envelope.v1 import envelope_pb2
from ai.mlops.v1 import mlops_bus, mlops_pb2
from aisdk.components import offload
from aisdk.components.mlops import artifacts, datasets, predicting, registry
from aisdk.components.mlops.training import Trained, TrainingError, train
from aisdk.components.retention import Pruner
from aisdk.components.storage import Database, Pool
from runtime.contract import Context
from runtime.errors import HandlerError
from runtime.telemetry import Telemetry
from runtime.telemetry.names import ATTR, METRIC, SPAN

if TYPE_CHECKING:
    from runtime.bus import Bus

COMPONENT = "mlops"
log = logging.getLogger("aisdk.mlops")
ENVIRONMENT_ENV = "AISDK_MLOPS_ENVIRONMENT"
DEFAULT_ENVIRONMENT = "production"
MODELS_CACHED = 32
Code = envelope_pb2.Error
# Attribute keys of the MLOps spans and metrics.
MODEL_ID = "mlops.model.id"
MODEL_VERSION = "mlops.model.version"
MODEL_TYPE = "mlops.model.type"
JOB_ID = "mlops.job.id"
STATUS = "status"
METRIC_PREFIX = "mlops.metric."
STATES = {registry.RUNNING: mlops_pb2.TRAINING_STATE_RUNNING, registry.SUCCEEDED: mlops_pb2.TRAINING_STATE_SUCCEEDED,
          registry.FAILED: mlops_pb2.TRAINING_STATE_FAILED}


def _model_id(job: mlops_pb2.TrainingJob) -> str:
    return job.model_id or f"{job.training_data.partition(':')[2] or job.training_data}-{job.model_type}"


def _version(text: str, model_id: str) -> int:
    if not text.isdigit():
        raise HandlerError(Code.CODE_INVALID_ARGUMENT, f"model {model_id!r}: versions are numbers, not {text!r}")
    return int(text)


class Mlops(mlops_bus.MlopsServiceHandler):
    def __init__(self, database_url: str | None = None, environment: str | None = None) -> None:
        self._db = Database(COMPONENT, database_url)
        self._retention = Pruner(COMPONENT)
        self.environment = environment or os.environ.get(ENVIRONMENT_ENV) or DEFAULT_ENVIRONMENT
        self._tel = Telemetry.disabled()
        self._models: OrderedDict[tuple[str, str, int], tuple[Any, registry.Version]] = OrderedDict()

    async def start(self, bus: Bus) -> None:
        self._tel = bus.telemetry if bus.telemetry is not None else Telemetry.disabled()
        await self._retention.start(await self._db.open())
        # scikit-learn takes about 0.7 s to import: not in the first job's time.
        await asyncio.to_thread(__import__, "sklearn.linear_model")

    async def stop(self) -> None:
        await self._retention.stop()
        await self._db.close()

    @property
    def pool(self) -> Pool:
        return self._db.pool

    # -- training ---------------------------------------------------------

    async def training(self, request: mlops_pb2.TrainingJob, ctx: Context) -> None:
        tenant, model_id = ctx.tenant_id, _model_id(request)
        attrs = {ATTR.TENANT_ID: tenant, JOB_ID: request.job_id, MODEL_ID: model_id, MODEL_TYPE: request.model_type}
        with self._tel.span(SPAN.MLOPS_TRAINING_JOB, attrs) as span:
            async with self.pool.connection() as conn:
                other = await registry.begin_job(conn, tenant, request.job_id, model_id, ctx.attempt)
            if other is not None:
                # A redelivery of a job that already has its outcome, or one
                # that a later delivery has taken over: nothing to do here.
                return
            parameters = json_format.MessageToDict(request.parameters)
            try:
                trained, data = await offload.in_thread(self._train, request, parameters)
            except (datasets.DatasetError, TrainingError) as e:
                async with self.pool.connection() as conn:
                    if not await registry.fail_job(conn, tenant, request.job_id, ctx.attempt, str(e)):
                        return self._superseded(tenant, request.job_id, ctx.attempt)
                self._tel.metrics.counter(METRIC.MLOPS_TRAINING_JOBS).add(1, {ATTR.TENANT_ID: tenant, STATUS: "failed"})
                code = Code.CODE_NOT_FOUND if isinstance(e, datasets.DatasetError) else Code.CODE_INVALID_ARGUMENT
                raise HandlerError(code, f"training job {request.job_id!r}: {e}") from e
            artifact = await offload.in_thread(artifacts.dump, trained.model)
            async with self.pool.connection() as conn, conn.transaction():
                version = await registry.add_version(
                    conn, tenant, model_id, request.job_id, ctx.attempt, request.model_type, request.training_data,
                    parameters, trained.metrics, data.feature_names, trained.classes, artifact,
                )
            if version is None:
                return self._superseded(tenant, request.job_id, ctx.attempt)
            span.set_attribute(MODEL_VERSION, str(version))
            for name, value in trained.metrics.items():
                span.set_attribute(METRIC_PREFIX + name, value)
        self._tel.metrics.counter(METRIC.MLOPS_TRAINING_JOBS).add(1, {ATTR.TENANT_ID: tenant, STATUS: "succeeded"})

    def _superseded(self, tenant: str, job_id: str, attempt: int) -> None:
        # Its outcome is the later delivery's to record; this run's is dropped.
        log.warning("training job %s: delivery %d was superseded by a later one; its result is dropped",
                    job_id, attempt)
        self._tel.metrics.counter(METRIC.MLOPS_TRAINING_JOBS).add(1, {ATTR.TENANT_ID: tenant, STATUS: "superseded"})

    @staticmethod
    def _train(job: mlops_pb2.TrainingJob, parameters: dict[str, Any]) -> tuple[Trained, datasets.Dataset]:
        data = datasets.load(job.training_data)
        return train(job.model_type, data, parameters), data

    async def jobs(self, request: mlops_pb2.TrainingQuery, ctx: Context) -> mlops_pb2.TrainingStatus:
        async with self.pool.connection() as conn:
            job = await registry.find_job(conn, ctx.tenant_id, request.job_id)
        if job is None:
            raise HandlerError(Code.CODE_NOT_FOUND, f"no training job {request.job_id!r} for this tenant")
        return mlops_pb2.TrainingStatus(
            request_id=request.request_id, job_id=job.job_id, state=STATES[job.state], model_id=job.model_id,
            model_version="" if job.version is None else str(job.version), error=job.error,
        )

    # -- registry and deployments ------------------------------------------

    async def models(self, request: mlops_pb2.ModelQuery, ctx: Context) -> mlops_pb2.ModelRegistry:
        environment = request.environment or self.environment
        async with self.pool.connection() as conn:
            found = await registry.versions(conn, ctx.tenant_id, request.model_id)
            deployed = await registry.deployed(conn, ctx.tenant_id, request.model_id, environment)
        if not found:
            raise HandlerError(Code.CODE_NOT_FOUND, f"no model {request.model_id!r} in the registry")
        reply = mlops_pb2.ModelRegistry(
            request_id=request.request_id, model_id=request.model_id, environment=environment,
            deployed_version="" if deployed is None else str(deployed),
        )
        for v in found:
            entry = reply.versions.add(
                version=str(v.version), model_type=v.model_type, training_data=v.training_data, job_id=v.job_id,
                metrics=v.metrics, feature_names=v.feature_names, classes=v.classes,
            )
            entry.created_at.FromDatetime(v.created_at)
        return reply

    async def deploy(self, request: mlops_pb2.ModelDeployment, ctx: Context) -> None:
        tenant = ctx.tenant_id
        promote = request.state == mlops_pb2.DEPLOYMENT_STATE_DEPLOYED
        async with self.pool.connection() as conn, conn.transaction():
            if promote:
                version = _version(request.model_version, request.model_id)
                if await registry.find_version(conn, tenant, request.model_id, version) is None:
                    # Retryable: the training of that version may still be running.
                    raise HandlerError(
                        Code.CODE_NOT_FOUND,
                        f"model {request.model_id!r} has no version {request.model_version!r} in the registry",
                        retryable=True,
                    )
            fresh = await registry.record_deployment(conn, tenant, request.deployment_id, request.model_id,
                                                     request.model_version, request.environment, request.state,
                                                     promote)
            if fresh and promote:
                await registry.promote(conn, tenant, request.model_id, request.environment, version,
                                       request.deployment_id)
        outcome = "promoted" if promote and fresh else "recorded" if fresh else "repeated"
        self._tel.metrics.counter(METRIC.MLOPS_DEPLOYMENTS).add(1, {ATTR.TENANT_ID: tenant, STATUS: outcome})

    # -- predictions --------------------------------------------------------

    async def _deployed_model(self, tenant: str, model_id: str) -> tuple[int, Any, registry.Version]:
        async with self.pool.connection() as conn:
            version = await registry.deployed(conn, tenant, model_id, self.environment)
            if version is None:
                if await registry.versions(conn, tenant, model_id):
                    raise HandlerError(
                        Code.CODE_FAILED_PRECONDITION,
                        f"model {model_id!r} has no version deployed in {self.environment!r}: publish mlops.deploy",
                    )
                raise HandlerError(Code.CODE_NOT_FOUND, f"no model {model_id!r} in the registry")
            key = (tenant, model_id, version)
            if key in self._models:
                self._models.move_to_end(key)
                model, meta = self._models[key]
                return version, model, meta
            found = await registry.find_version(conn, tenant, model_id, version)
            blob = await registry.artifact(conn, tenant, model_id, version)
        assert found is not None and blob is not None  # the deployment's foreign key keeps them
        meta = found
        try:
            model = await asyncio.to_thread(artifacts.load, blob, f"model {model_id!r} version {version}")
        except artifacts.ArtifactError as e:
            raise HandlerError(Code.CODE_FAILED_PRECONDITION, str(e)) from e
        self._models[key] = (model, meta)
        while len(self._models) > MODELS_CACHED:
            self._models.popitem(last=False)
        return version, model, meta

    async def predictions(self, request: mlops_pb2.PredictionRequest, ctx: Context) -> mlops_pb2.PredictionResult:
        tenant = ctx.tenant_id
        t0 = time.perf_counter()
        with self._tel.span(SPAN.MLOPS_PREDICTION, {ATTR.TENANT_ID: tenant, MODEL_ID: request.model_id}) as span:
            version, model, meta = await self._deployed_model(tenant, request.model_id)
            span.set_attribute(MODEL_VERSION, str(version))
            what = f"model {request.model_id!r} version {version}"
            try:
                x = predicting.row(request.features, meta.feature_names, what)
            except predicting.FeatureError as e:
                raise HandlerError(Code.CODE_INVALID_ARGUMENT, str(e)) from e
            # scikit-learn's kernels release the GIL: a thread keeps the loop free.
            result = await offload.in_thread(predicting.answer, model, x, meta.classes, timeout=ctx.time_left())
        elapsed = time.perf_counter() - t0
        attrs = {ATTR.TENANT_ID: tenant, MODEL_ID: request.model_id, MODEL_VERSION: str(version)}
        self._tel.metrics.counter(METRIC.MLOPS_PREDICTIONS).add(1, attrs)
        self._tel.metrics.histogram(METRIC.MLOPS_PREDICTION_DURATION).record(elapsed, attrs)
        latency = duration_pb2.Duration()
        latency.FromNanoseconds(round(elapsed * 1e9))
        return mlops_pb2.PredictionResult(
            prediction_id=request.prediction_id, model_id=request.model_id, model_version=str(version),
            output=result.output, confidence=result.confidence, latency=latency,
        )
