"""Triage end to end on the real parts: one nats-server with JetStream and
one embedded PostgreSQL for the module, the platform's MLOps, RAG, gateway
(its offline local provider) and prompt workers, and the triage worker.
The classifier is trained on data/tickets.csv and the knowledge base kb/ is
ingested once, over the bus, as `python -m triage setup` does."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from helpdesk.triage.v1 import triage_bus, triage_pb2

from aisdk.components import COMPONENTS
from aisdk.components.mlops import Mlops
from aisdk.components.rag.worker import RagWorker
from aisdk.components.storage import temporary_database
from runtime import Bus, BusSettings, ContractViolation, EmbeddedServer, RemoteError
from runtime.testing import expect_event
from triage import bootstrap
from triage.service import Triage

TENANT = "acme"


@dataclass(frozen=True)
class Deployment:
    model: bootstrap.Model
    triage: Triage


@pytest_asyncio.fixture(scope="module")
async def deployment(nats_server: EmbeddedServer, tmp_path_factory: pytest.TempPathFactory
                     ) -> AsyncIterator[Deployment]:
    data_dir = tmp_path_factory.mktemp("mlops-data")
    with pytest.MonkeyPatch.context() as env:
        # Where the MLOps workers read training data, and setup writes it.
        env.setenv("AISDK_MLOPS_DATA_DIR", str(data_dir))
        async with temporary_database() as url:
            async with Bus(nats_server.url, BusSettings(name="triage-platform")) as bus:
                await bus.serve(COMPONENTS["gateway"]())
                await bus.serve(COMPONENTS["prompt"]())
                await bus.serve(RagWorker(database_url=url))
                await bus.serve(Mlops(database_url=url))
                triage = Triage()
                await bus.serve(triage)
                model = await bootstrap.train_and_deploy(bus, TENANT, data_dir)
                await bootstrap.ingest(bus, TENANT)
                yield Deployment(model, triage)


def ticket(body: str, subject: str = "") -> triage_pb2.Ticket:
    return triage_pb2.Ticket(ticket_id=uuid.uuid4().hex, subject=subject, body=body)


async def test_a_ticket_is_classified_answered_from_its_category_and_announced(
    deployment: Deployment, bus: Bus
) -> None:
    sent = ticket("I was charged twice for my order, can I get my money back?", subject="Double charge")
    async with expect_event(bus, triage_bus.TRIAGE_TRIAGED, TENANT,
                            where=lambda triaged: triaged.ticket_id == sent.ticket_id) as announced:
        got = await triage_bus.TriageServiceClient(bus, TENANT).tickets(sent)
    assert (got.ticket_id, got.category, got.needs_review) == (sent.ticket_id, "billing", False)
    assert got.confidence >= 0.5
    assert (got.model_id, got.model_version) == (deployment.model.model_id, deployment.model.version)
    # Retrieval kept to the predicted category's articles, and the draft is drawn from them.
    assert got.sources and {s.document_id for s in got.sources} == {"billing"}
    assert "duplicate charge is refunded" in got.draft_reply
    assert got.answer_model == "local/extractive" and got.tokens.total > 0 and got.cost > 0
    assert announced.payload == got


@pytest.mark.parametrize(("body", "category"), [
    ("My parcel is late and the tracking has not moved.", "shipping"),
    ("I forgot my password and cannot sign in.", "account"),
    ("The screen of my new tablet stopped working.", "product"),
])
async def test_each_category_routes_to_its_articles(deployment: Deployment, bus: Bus, body: str,
                                                    category: str) -> None:
    got = await triage_bus.TriageServiceClient(bus, TENANT).tickets(ticket(body))
    assert (got.category, got.needs_review) == (category, False)
    assert {s.document_id for s in got.sources} == {category}
    assert got.draft_reply


async def test_an_unclear_ticket_needs_review_and_searches_every_article(deployment: Deployment,
                                                                         bus: Bus) -> None:
    got = await triage_bus.TriageServiceClient(bus, TENANT).tickets(ticket("Hello there, I have a question."))
    assert got.needs_review and got.confidence < deployment.triage.settings.review_below
    assert got.category in {"billing", "shipping", "account", "product"}


async def test_bad_input_is_refused_with_a_clear_error(deployment: Deployment, bus: Bus) -> None:
    client = triage_bus.TriageServiceClient(bus, TENANT)
    with pytest.raises(ContractViolation, match="body"):
        await client.tickets(triage_pb2.Ticket(ticket_id="t1"))
    # A tenant that was never set up has no model: triage says which service refused and why.
    with pytest.raises(RemoteError) as refused:
        await triage_bus.TriageServiceClient(bus, "newcomer").tickets(ticket("Where is my parcel?"))
    assert refused.value.code_name == "CODE_NOT_FOUND"
    assert refused.value.message == "mlops.predictions: no model 'triage-tickets' in the registry"
