"""The one error type commands raise for input or setup the user can fix."""

from __future__ import annotations


class CommandError(Exception):
    """Printed as one line on stderr, exit code 1."""
