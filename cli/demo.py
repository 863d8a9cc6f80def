"""`aisdk demo` (`make demo`): the smallest real end-to-end run that exists.

An embedded nats-server with JetStream starts; the prompt component serves
its subjects; a typed client publishes a template event and asks for a
rendered context; garbage on the bus is refused and dead-lettered; discovery
shows what is served. (The components issue grows this into the document
Q&A flow.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import uuid
from typing import Any


TENANT = "acme"


def show(label: str, text: str) -> None:
    print(f"{label:<12} {text}")


async def run(url: str) -> None:
    # Imported here: `aisdk --help` and `aisdk gen` must not depend on
    # generated code or components.
    from ai.envelope.v1 import envelope_pb2
    from ai.prompt.v1 import prompt_bus, prompt_pb2
    from components.prompt import PromptManager
    from runtime import telemetry
    from runtime.bus import Bus
    from runtime.settings import BusSettings
    from runtime.errors import ContractViolation, RemoteError

    tel = telemetry.setup("demo", exporter="memory", metrics_exporter="none", sampler_ratio=1.0)
    async with Bus(url, BusSettings(name="demo"), telemetry=tel) as bus:
        service = await bus.serve(PromptManager())
        for ep in service.endpoints:
            show("serving", f"{ep.subject}  ({ep.spec.pattern.value}, {ep.spec.request_name})")
        prompts = prompt_bus.PromptServiceClient(bus, TENANT)

        template = prompt_pb2.PromptTemplate(
            template_id="document-qa",
            version="1",
            template="Answer the question from the context.\nQuestion: {question}\nContext:\n{context}",
        )
        await prompts.templates(template)
        show("published", f"{prompt_bus.prompt_templates_subject(TENANT)}  template {template.template_id} v1")
        await bus.nc.flush()
        await asyncio.sleep(0.05)

        request = prompt_pb2.ContextRequest(
            request_id=str(uuid.uuid4()),
            template_id="document-qa",
            variables={"question": "What is the refund policy?"},
            context_snippets=["Refunds are granted within 30 days of purchase.", "Shipping is free over $50."],
            max_tokens=34,
        )
        result = await prompts.context(request)
        show("requested", f"{prompt_bus.prompt_context_subject(TENANT)} -> {result.estimated_tokens} tokens, "
                          f"{result.truncated_snippets} snippet(s) dropped to fit 34")
        for line in result.prompt.splitlines():
            show("", f"| {line}")

        try:
            await prompts.context(prompt_pb2.ContextRequest(template_id="document-qa"))
        except ContractViolation as e:
            show("refused", f"locally, before sending: {e}")
        try:
            await prompts.context(prompt_pb2.ContextRequest(request_id="r2", template_id="nope"))
        except RemoteError as e:
            show("remote", str(e))

        letters: list[envelope_pb2.DeadLetter] = []

        async def on_letter(msg: object) -> None:
            env = envelope_pb2.Envelope.FromString(getattr(msg, "data"))
            letters.append(envelope_pb2.DeadLetter.FromString(env.data))

        await bus.nc.subscribe(f"ai.dlq.prompt.templates.{TENANT}", cb=on_letter)
        await bus.nc.publish(prompt_bus.prompt_templates_subject(TENANT), b"\x08garbage")
        for _ in range(100):
            if letters:
                break
            await asyncio.sleep(0.02)
        if letters:
            show("dead letter", f"{letters[0].subject}: {letters[0].reason}")

        info = json.loads((await bus.nc.request("$SRV.INFO.prompt", b"", timeout=2)).data)
        show("discovery", ", ".join(f"{e['name']} {e['metadata']['request_type']}" for e in info["endpoints"]))
        stats = service.endpoints
        show("stats", ", ".join(f"{ep.spec.operation}: {ep.stats.handled} handled, {ep.stats.invalid} invalid"
                                for ep in stats))
    tel.force_flush()
    print("\ntraces (OpenTelemetry, in memory):")
    print(tel.waterfall(width=110))
    tel.shutdown()


def main() -> int:
    from runtime.server import EmbeddedServer

    with EmbeddedServer(name="aisdk-demo") as server:
        show("nats-server", f"{server.url} (JetStream on)")
        asyncio.run(run(server.url))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    return main()


def register(sub: Any) -> None:
    p = sub.add_parser("demo", help="an end-to-end exchange with the prompt component on an embedded nats-server")
    p.set_defaults(func=cmd_demo)


if __name__ == "__main__":
    raise SystemExit(main())
