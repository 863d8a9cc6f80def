"""Envelope schema versions: "MAJOR.MINOR" of the contract a payload was
written with (the package's vN and the file's `(ai.options.v1.contract).minor`).

Within a major every change is additive (`aisdk check` enforces it), so a
reader accepts any minor of its own major: fields of a newer minor arrive as
unknown fields and are kept when the message is relayed; fields an older
minor lacks read as their defaults. A different major is a different package
on different subjects, so seeing one here means a misrouted message.
"""

from __future__ import annotations

import re

from runtime.errors import PlatformError

_VERSION = re.compile(r"(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})")


class SchemaVersionMismatch(PlatformError, ValueError):
    """A payload whose schema version this process cannot read."""

    def __init__(self, expected: str, got: str, reason: str) -> None:
        self.expected = expected
        self.got = got
        self.reason = reason
        super().__init__(f"schema version {got!r} is not compatible with {expected!r}: {reason}")


def parse_schema_version(version: str) -> tuple[int, int]:
    """(major, minor) of "MAJOR.MINOR"; ValueError if it is not one."""
    m = _VERSION.fullmatch(version)
    if m is None:
        raise ValueError(f"{version!r} is not MAJOR.MINOR")
    return int(m.group(1)), int(m.group(2))


def check_schema_version(expected: str, got: str) -> None:
    """Accept `got` if a reader of contract version `expected` can decode it.

    Same major, any minor. Raises SchemaVersionMismatch naming both versions
    for another major or a malformed version.
    """
    try:
        want = parse_schema_version(expected)
    except ValueError:
        raise SchemaVersionMismatch(expected, got, f"the expected version {expected!r} is not MAJOR.MINOR") from None
    try:
        have = parse_schema_version(got)
    except ValueError:
        raise SchemaVersionMismatch(expected, got, "not a MAJOR.MINOR version") from None
    if have[0] != want[0]:
        raise SchemaVersionMismatch(
            expected, got, f"major {have[0]} is unknown here (this reader understands major {want[0]})"
        )
