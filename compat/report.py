"""What a compatibility check finds, in one shape for every check, so the
command line, the tests and CI read them the same way."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from runtime.errors import PlatformError

Severity = Literal["error", "warning", "info"]


class CompatError(PlatformError):
    """A check that cannot run (unknown ref, missing tool) or that found breaks."""


@dataclass(frozen=True)
class Finding:
    check: str  # "lint", "breaking", "registry", "versions", "drift", "properties", "asyncapi"
    where: str  # "proto/ai/agent/v1/agent.proto:28", a generated file, or ""
    text: str  # names the message, field or subject
    rule: str = ""  # buf's rule id, or ours in the same style
    severity: Severity = "error"

    def line(self) -> str:
        head = f"{self.where}: " if self.where else ""
        tail = f" [{self.rule}]" if self.rule else ""
        prefix = "" if self.severity == "error" else f"{self.severity}: "
        return f"{prefix}{head}{self.text}{tail}"


def errors(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity == "error"]
