"""`oppiva serve` as a real process: it starts, prints its URL and answers over HTTP."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from oppiva.db import Store
from oppiva.migrations import head
from tests.conftest import make_key
from tests.factories import make_customer

OPPIVA = Path(sys.executable).with_name("oppiva")
STARTUP_SECONDS = 30


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def environment(tmp_path: Path) -> dict[str, str]:
    """The environment of a child `oppiva`: its own key settings, no database from outside."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPPIVA_")}
    env["OPPIVA_SECRET_KEY"] = os.environ.get("OPPIVA_SECRET_KEY", "test-secret-key")
    env["OPPIVA_SECRET_KEY_FILE"] = str(tmp_path / "oppiva.key")
    return env


def run_oppiva(url: str, *args: str, env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(
        [str(OPPIVA), "--database", url, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"stdout: {done.stdout}\nstderr: {done.stderr}"
    return done.stdout


class Server:
    def __init__(self, process: subprocess.Popen[bytes], log: Path, base: str) -> None:
        self.process, self.log, self.base = process, log, base

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


@pytest.fixture
def serve(environment: dict[str, str], tmp_path: Path) -> Iterator[Callable[[str], Server]]:
    """Start `oppiva --database URL serve --port P`; the process is always terminated."""
    started: list[subprocess.Popen[bytes]] = []

    def start(url: str) -> Server:
        port = free_port()
        log = tmp_path / f"serve-{port}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [str(OPPIVA), "--database", url, "serve", "--port", str(port)],
                env=environment,
                cwd=tmp_path,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        started.append(process)
        server = Server(process, log, f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if process.poll() is not None:
                pytest.fail(f"oppiva serve exited with {process.returncode}:\n{server.output()}")
            try:
                if httpx.get(f"{server.base}/v1/health", timeout=2).status_code == 200:
                    return server
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"oppiva serve did not answer in {STARTUP_SECONDS} s:\n{server.output()}"
                )
            time.sleep(0.2)

    yield start

    for process in started:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def check_server(server: Server, database: str, credential: str) -> None:
    auth = {"Authorization": f"Bearer {credential}"}
    customers = httpx.get(
        f"{server.base}/v1/customers", params={"limit": 5}, headers=auth, timeout=10
    )
    assert customers.status_code == 200, customers.text
    body = customers.json()
    assert len(body) == 5
    assert all(c["status"] == "active" for c in body)
    assert [c["id"] for c in body] == sorted(c["id"] for c in body)

    health = httpx.get(f"{server.base}/v1/health", timeout=10)
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "database": database, "revision": head()}

    assert f"oppiva API on {server.base}/v1" in server.output()


def test_the_demo_serves_only_to_credentials_that_may_read_and_audits_the_read(
    serve: Callable[[str], Server], environment: dict[str, str], tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'served.db'}"
    loaded = run_oppiva(
        url,
        "demo",
        "--people",
        "20",
        "--customers",
        "60",
        "--weeks",
        "4",
        env=environment,
        cwd=tmp_path,
    )
    assert "active customers" in loaded
    admin = re.search(r"Demo admin: (\S+)  password: (\S+)", loaded)
    till = re.search(r"Till key .*: (opk_\S+)", loaded)
    assert admin and till, loaded

    server = serve(url)
    customers = f"{server.base}/v1/customers"
    assert httpx.get(customers, timeout=10).status_code == 401
    till_auth = {"Authorization": f"Bearer {till.group(1)}"}
    assert httpx.get(customers, headers=till_auth, timeout=10).status_code == 403
    login = httpx.post(
        f"{server.base}/v1/auth/token",
        data={"username": admin.group(1), "password": admin.group(2)},
        timeout=10,
    )
    assert login.status_code == 200, login.text
    token = login.json()["access_token"]
    check_server(server, "sqlite", token)
    everyone = httpx.get(
        customers, params={"limit": 1000}, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert len(everyone.json()) >= 20 + 8 + 60  # the sample, its organisations and the members

    audit = json.loads(
        run_oppiva(url, "audit", "--limit", "1000", "--json", env=environment, cwd=tmp_path)
    )
    reads = [
        e for e in audit if e["action"] == "customer.search" and e["actor"].startswith("user:")
    ]
    assert reads and all(e["actor"].endswith(admin.group(1)) for e in reads)
    assert {e["customer_id"] for e in reads} == {c["id"] for c in everyone.json()}


def test_serve_answers_over_http_on_the_test_store(
    serve: Callable[[str], Server], db: Store
) -> None:
    with db.transaction() as session:
        for _ in range(7):
            make_customer(session)

    server = serve(db.url)
    key = make_key(db, ["customers:read"])
    check_server(server, db.engine.dialect.name, key)
    everyone = httpx.get(
        f"{server.base}/v1/customers", headers={"Authorization": f"Bearer {key}"}, timeout=10
    ).json()
    assert len(everyone) == 7
