"""MLOps on a real nats-server (JetStream) and the real embedded PostgreSQL:
training into the registry, deployments switching every predictor,
predictions carrying latency and version, and bad input answered clearly."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from google.protobuf import json_format, struct_pb2

from ai.mlops.v1 import mlops_bus, mlops_pb2
from aisdk.components import storage
from aisdk.components.mlops import Mlops, artifacts, registry
from runtime.bus import Bus
from runtime.settings import BusSettings
from runtime.contract import Context
from runtime.errors import RemoteError
from runtime.server import EmbeddedServer
from runtime.telemetry import Telemetry

TENANT = "ml"
IRIS_ROW = [5.1, 3.5, 1.4, 0.2]
DEPLOY = mlops_bus.MLOPS_DEPLOY
assert DEPLOY.durability is not None
# A deployment that names a version still training is retried: here often and
# for long, so that the test waits on the training, not on a retry schedule.
FAST = {DEPLOY.key: dataclasses.replace(DEPLOY.durability, backoff_ms=(50,), max_deliver=1200)}


class Counting(Mlops):
    """The real service; it counts the predictions it answered."""

    def __init__(self, url: str) -> None:
        super().__init__(database_url=url)
        self.answered = 0

    async def predictions(self, request: mlops_pb2.PredictionRequest, ctx: Context) -> mlops_pb2.PredictionResult:
        result = await super().predictions(request, ctx)
        self.answered += 1
        return result


Start = Callable[..., Awaitable[tuple[Bus, Counting]]]


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 60.0) -> None:
    """Wait for `check`; fail only if it is still false after `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedServer]:
    # Its own server: the deploy stream's short test backoff stays here.
    with EmbeddedServer(name="mlops-test") as s:
        yield s


@pytest.fixture
async def url() -> AsyncIterator[str]:
    async with storage.temporary_database() as u:
        yield u


@pytest.fixture
async def start(server: EmbeddedServer, url: str) -> AsyncIterator[Start]:
    """Starts a worker on its own connection; all are closed after the test."""
    buses: list[Bus] = []

    async def worker(name: str, telemetry: Telemetry | None = None) -> tuple[Bus, Counting]:
        bus = Bus(server.url, BusSettings(name=name, durability_overrides=FAST), telemetry=telemetry)
        await bus.connect()
        buses.append(bus)
        handler = Counting(url)
        await bus.serve(handler, tenants=[TENANT])
        return bus, handler

    yield worker
    for b in buses:
        await b.close()


@pytest.fixture
async def client(server: EmbeddedServer) -> AsyncIterator[mlops_bus.MlopsServiceClient]:
    async with Bus(server.url, BusSettings(name="mlops-client", durability_overrides=FAST)) as bus:
        yield mlops_bus.MlopsServiceClient(bus, TENANT)


def job(job_id: str, model_type: str = "logistic_regression", data: str = "sklearn:iris", model: str = "iris",
        **parameters: Any) -> mlops_pb2.TrainingJob:
    j = mlops_pb2.TrainingJob(job_id=job_id, model_type=model_type, training_data=data, model_id=model)
    j.parameters.update(parameters)
    return j


async def finished(client: mlops_bus.MlopsServiceClient, job_id: str) -> mlops_pb2.TrainingStatus:
    status = mlops_pb2.TrainingStatus()

    async def done() -> bool:
        try:
            status.CopyFrom(await client.jobs(mlops_pb2.TrainingQuery(request_id="q", job_id=job_id)))
        except RemoteError as e:
            assert e.code_name == "CODE_NOT_FOUND"
            return False
        return status.state != mlops_pb2.TRAINING_STATE_RUNNING

    await until(done)
    return status


async def deployed(client: mlops_bus.MlopsServiceClient, model: str, version: str) -> None:
    async def check() -> bool:
        reply = await client.models(mlops_pb2.ModelQuery(request_id="m", model_id=model))
        return reply.deployed_version == version

    await until(check)


def deployment(deployment_id: str, version: str, model: str = "iris") -> mlops_pb2.ModelDeployment:
    return mlops_pb2.ModelDeployment(deployment_id=deployment_id, model_id=model, model_version=version,
                                     environment="production", state=mlops_pb2.DEPLOYMENT_STATE_DEPLOYED)


def predict(n: int, values: list[Any] | None = None, model: str = "iris",
            named: dict[str, Any] | None = None) -> mlops_pb2.PredictionRequest:
    features = struct_pb2.Struct()
    features.update(named or {"values": IRIS_ROW if values is None else values})
    return mlops_pb2.PredictionRequest(prediction_id=f"p{n}", model_id=model, features=features)


async def spread(client: mlops_bus.MlopsServiceClient, workers: list[Counting], version: str) -> None:
    """Predict until every worker has answered three times; every answer comes
    from `version`, with its latency."""
    for w in workers:
        w.answered = 0
    n = 0
    while min(w.answered for w in workers) < 3:
        n += 1
        assert n < 500, "a predictor never got a request"
        r = await client.predictions(predict(n))
        assert (r.prediction_id, r.model_id, r.model_version) == (f"p{n}", "iris", version)
        assert r.output["label"] == "setosa" and 0.5 < r.confidence <= 1.0
        probabilities = json_format.MessageToDict(r.output)["probabilities"]
        assert set(probabilities) == {"setosa", "versicolor", "virginica"}
        assert r.latency.ToNanoseconds() > 0


async def test_training_registry_and_deployments_switch_every_predictor(
    start: Start, client: mlops_bus.MlopsServiceClient
) -> None:
    (bus_a, a), (bus_b, b) = await start("mlops-a"), await start("mlops-b")
    await client.training(job("j-lr", max_iter=500))
    await client.training(job("j-rf", "random_forest_classifier", n_estimators=20, random_state=1))
    lr, rf = await finished(client, "j-lr"), await finished(client, "j-rf")
    assert (lr.state, rf.state) == (mlops_pb2.TRAINING_STATE_SUCCEEDED,) * 2, (lr.error, rf.error)
    assert {lr.model_version, rf.model_version} == {"1", "2"} and lr.model_id == "iris"

    registry = await client.models(mlops_pb2.ModelQuery(request_id="m", model_id="iris"))
    assert [v.version for v in registry.versions] == ["1", "2"] and registry.deployed_version == ""
    for v in registry.versions:
        assert v.metrics["accuracy"] > 0.8 and v.metrics["f1_macro"] > 0.8 and v.metrics["test_samples"] == 38
        assert v.created_at.seconds > 0 and len(v.feature_names) == 4
        assert list(v.classes) == ["setosa", "versicolor", "virginica"] and v.training_data == "sklearn:iris"
    assert {v.model_type for v in registry.versions} == {"logistic_regression", "random_forest_classifier"}

    with pytest.raises(RemoteError) as e:
        await client.predictions(predict(0))
    assert e.value.code_name == "CODE_FAILED_PRECONDITION" and "no version deployed" in e.value.message

    await client.deploy(deployment("d1", lr.model_version))
    await deployed(client, "iris", lr.model_version)
    await spread(client, [a, b], lr.model_version)
    await client.deploy(deployment("d2", rf.model_version))
    await deployed(client, "iris", rf.model_version)
    await spread(client, [a, b], rf.model_version)

    # A predictor started later serves the stored deployment.
    await bus_a.close()
    await bus_b.close()
    _, later = await start("mlops-later")
    r = await client.predictions(predict(1, named=dict(zip(registry.versions[0].feature_names, IRIS_ROW))))
    assert (r.model_version, later.answered) == (rf.model_version, 1)


async def test_a_deployment_waits_for_its_version_and_a_job_runs_once(
    start: Start, client: mlops_bus.MlopsServiceClient
) -> None:
    await start("mlops-a")
    # The deployment arrives before its version exists: it is retried until the training stored it.
    await client.deploy(deployment("early", "1", model="wine"))
    await client.training(job("w1", data="sklearn:wine", model="wine", max_iter=5000), message_id="w1")
    await client.training(job("w1", data="sklearn:wine", model="wine", max_iter=5000), message_id="w1-again")
    assert (await finished(client, "w1")).model_version == "1"
    await deployed(client, "wine", "1")
    r = await client.predictions(predict(1, [13.0, 2.0, 2.4, 19.0, 100.0, 2.5, 2.5, 0.3, 1.6, 5.0, 1.0, 3.0, 1000.0],
                                         model="wine"))
    assert r.model_version == "1" and r.output["label"] in {"class_0", "class_1", "class_2"}
    # The republished job ran once: one version only, however long we look.
    await client.training(job("w2", "ridge", data="sklearn:diabetes", model="sugar"))
    assert (await finished(client, "w2")).state == mlops_pb2.TRAINING_STATE_SUCCEEDED
    wine = await client.models(mlops_pb2.ModelQuery(request_id="m", model_id="wine"))
    assert [v.version for v in wine.versions] == ["1"]
    sugar = await client.models(mlops_pb2.ModelQuery(request_id="m", model_id="sugar"))
    assert "r2" in sugar.versions[0].metrics and list(sugar.versions[0].classes) == []


async def test_bad_input_gets_clear_errors(start: Start, client: mlops_bus.MlopsServiceClient) -> None:
    await start("mlops-a")
    await client.training(job("bad-data", data="sklearn:nope"))
    await client.training(job("bad-type", "quantum_forest"))
    await client.training(job("bad-param", max_depth=3))
    await client.training(job("good", max_iter=500))
    errors = {j: (await finished(client, j)) for j in ("bad-data", "bad-type", "bad-param", "good")}
    assert all(errors[j].state == mlops_pb2.TRAINING_STATE_FAILED for j in ("bad-data", "bad-type", "bad-param"))
    assert "no bundled dataset 'nope'" in errors["bad-data"].error and "iris" in errors["bad-data"].error
    assert "unknown model type 'quantum_forest'" in errors["bad-type"].error
    assert "logistic_regression takes no parameter max_depth" in errors["bad-param"].error
    assert errors["good"].state == mlops_pb2.TRAINING_STATE_SUCCEEDED and errors["good"].model_version == "1"

    await client.deploy(deployment("d-bad", "first"))  # not a version number: dead-lettered, nothing changes
    await client.deploy(deployment("d-good", "1"))
    await deployed(client, "iris", "1")

    async def refused(request: Any, call: Callable[[Any], Awaitable[Any]]) -> RemoteError:
        with pytest.raises(RemoteError) as e:
            await call(request)
        return e.value

    e = await refused(predict(1, model="nope"), client.predictions)
    assert e.code_name == "CODE_NOT_FOUND" and "no model 'nope'" in e.message
    e = await refused(predict(2, [1.0, 2.0, 3.0]), client.predictions)
    assert e.code_name == "CODE_INVALID_ARGUMENT" and "takes 4 features" in e.message and "got 3" in e.message
    e = await refused(predict(3, [1.0, 2.0, "x", 4.0]), client.predictions)
    assert e.code_name == "CODE_INVALID_ARGUMENT" and "finite number" in e.message
    e = await refused(predict(4, named={"sepal length (cm)": 1.0}), client.predictions)
    assert e.code_name == "CODE_INVALID_ARGUMENT" and "missing: sepal width (cm)" in e.message
    e = await refused(mlops_pb2.TrainingQuery(request_id="q", job_id="never"), client.jobs)
    assert e.code_name == "CODE_NOT_FOUND"
    assert (await client.predictions(predict(5))).model_version == "1", "the worker still serves"


async def test_training_and_predictions_are_traced_and_measured(
    start: Start, client: mlops_bus.MlopsServiceClient
) -> None:
    from runtime import telemetry

    tel = telemetry.setup("mlops-test", exporter="memory", metrics_exporter="memory")
    await start("mlops-traced", telemetry=tel)
    await client.training(job("t1", max_iter=500))
    await finished(client, "t1")
    await client.deploy(deployment("t-d1", "1"))
    await deployed(client, "iris", "1")
    await client.predictions(predict(1))
    assert tel.span_exporter is not None
    spans = {s.name: s for s in tel.span_exporter.get_finished_spans()}
    trained = spans["mlops.training.job"].attributes or {}
    assert trained["mlops.model.version"] == "1" and float(trained["mlops.metric.accuracy"]) > 0.8  # type: ignore[arg-type]
    predicted = spans["mlops.prediction"]
    assert (predicted.attributes or {})["mlops.model.version"] == "1" and predicted.parent is not None


TRAINING = mlops_bus.MLOPS_TRAINING
assert TRAINING.durability is not None
# An ack wait far shorter than the job: without heartbeats it is redelivered mid-run.
SHORT_ACK = {TRAINING.key: dataclasses.replace(TRAINING.durability, ack_wait_ms=600, max_deliver=50)}


class Held(Counting):
    """Training that holds until the test lets it go, counting its runs."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.release = threading.Event()
        self.runs = 0

    def _held(self, job: mlops_pb2.TrainingJob, parameters: dict[str, Any]) -> Any:
        self.runs += 1
        assert self.release.wait(120), "never released"
        return Mlops._train(job, parameters)

    _train = _held  # an instance's method where the base has a static one


async def test_a_training_longer_than_its_ack_wait_makes_exactly_one_version(url: str) -> None:
    with EmbeddedServer(name="mlops-long") as server:
        async with Bus(server.url, BusSettings(name="mlops-long", durability_overrides=SHORT_ACK)) as bus:
            handler = Held(url)
            await bus.serve(handler, tenants=[TENANT])
            assert bus._jets is not None
            [worker] = [w for w in bus._jets.workers if w.endpoint.subject.startswith("ai.mlops.training")]
            client = mlops_bus.MlopsServiceClient(bus, TENANT)
            await client.training(job("long", max_iter=500))

            async def beyond_the_ack_wait() -> bool:
                # Three heartbeats at a third of the ack wait each: the job has
                # run longer than one ack wait, and a fourth is on its way.
                return worker.progress_sent >= 4

            await until(beyond_the_ack_wait)
            handler.release.set()
            status = await finished(client, "long")
            assert status.state == mlops_pb2.TRAINING_STATE_SUCCEEDED and status.model_version == "1"
            consumer = await bus.nc.jetstream().consumer_info(worker.psub._stream, worker.psub._consumer)
            assert (handler.runs, consumer.num_redelivered, consumer.num_ack_pending) == (1, 0, 0)
            assert [v.version for v in (await client.models(mlops_pb2.ModelQuery(request_id="m",
                                                                                model_id="iris"))).versions] == ["1"]


async def test_a_redelivery_while_the_first_is_alive_makes_one_version(url: str) -> None:
    # The heartbeat of delivery 1 was lost: delivery 2 takes the job over;
    # delivery 1, alive after all, can neither finish nor fail it.
    pool = await storage.open_database("mlops", url=url)
    artifact = await asyncio.to_thread(artifacts.dump, {"model": "any"})

    async def add(conn: storage.Connection, attempt: int) -> int | None:
        return await registry.add_version(conn, TENANT, "m", "j", attempt, "ridge", "sklearn:diabetes", {}, {},
                                          [], [], artifact)
    try:
        async with pool.connection() as conn:
            assert await registry.begin_job(conn, TENANT, "j", "m", 1) is None
            assert await registry.begin_job(conn, TENANT, "j", "m", 2) is None
            async with conn.transaction():
                assert await add(conn, 1) is None
            assert not await registry.fail_job(conn, TENANT, "j", 1, "late")
            async with conn.transaction():
                assert await add(conn, 2) == 1
            again = await registry.begin_job(conn, TENANT, "j", "m", 3)
            assert again is not None and (again.state, again.version, again.attempt) == ("succeeded", 1, 2)
            assert [v.version for v in await registry.versions(conn, TENANT, "m")] == [1]
    finally:
        await pool.close()
