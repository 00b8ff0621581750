"""How many receipts a till can post: `POST /v1/receipts` over loopback, under wrk.

Setup (not timed): a scratch PostgreSQL database, `oppiva init`, the stores, products,
members and four weeks of receipts of a simulated chain (`oppiva simulate`, `oppiva
import`), a programme with a per-euro rule that every member joins, and an API key with
`receipts:write` bound to one store. Then, for each server (`oppiva serve`, and uvicorn
with the app factory and 1 or 2 workers) and each wrk connection count: a warm-up, `VACUUM
ANALYZE` (this host's PostgreSQL runs without autovacuum), then a measured run of distinct
receipts (unique external ids and Idempotency-Keys, a joined member's card, 3-10 lines of real
skus). Servers: `serve` is `oppiva serve` (one process),
`serve-N` is `oppiva serve --workers N`, `uvicorn-N` is uvicorn with the app factory and N
workers. Prints receipts/s, p50/p95/p99, the non-201 answers and the CPU the server's processes
and the database's backends spent per receipt (from /proc: steadier than the rate on a shared
machine; the backends' share needs PostgreSQL on the same host); afterwards checks
that the database holds every receipt and a points lot for each.

    .venv/bin/python benchmarks/till.py [--duration 30] [--connections 4,8,16] [--servers serve,serve-2]
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

POSTGRES_URL = os.environ.get(
    "OPPIVA_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
BIN = Path(sys.executable).parent
OPPIVA = str(BIN / "oppiva")
STORE = "kamppi"
RULES = """id: till-benchmark
version: 1
rules:
  - name: base
    kind: per_euro
    points_per_euro: 1
"""

LUA = r"""
local cards = {%(cards)s}
local skus = {%(skus)s}
local prices = {%(prices)s}
local key = "%(key)s"
local run = "%(run)s"
local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(tid * 7919 + os.time())
  created = 0
  other = 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. key
end

function request()
  counter = counter + 1
  local id = run .. "-" .. tid .. "-" .. counter
  local n = math.random(3, 10)
  local lines = {}
  for i = 1, n do
    local p = math.random(#skus)
    lines[i] = string.format('{"sku":"%%s","quantity":%%d,"unit_price":"%%s"}',
      skus[p], math.random(1, 3), prices[p])
  end
  local body = string.format(
    '{"source":"till","external_id":"%%s","purchased_at":"%%s","store":"%(store)s",' ..
    '"identifiers":[{"kind":"card","value":"%%s"}],"lines":[%%s]}',
    id, os.date("!%%Y-%%m-%%dT%%H:%%M:%%S+00:00"), cards[math.random(#cards)],
    table.concat(lines, ","))
  wrk.headers["Idempotency-Key"] = id
  return wrk.format(nil, "/v1/receipts", nil, body)
end

function response(status, headers, body)
  if status == 201 then created = created + 1 else other = other + 1 end
end

function done(summary, latency, requests)
  local c, o = 0, 0
  for _, t in ipairs(threads) do
    c = c + t:get("created")
    o = o + t:get("other")
  end
  io.write(string.format(
    'RESULT {"requests":%%d,"seconds":%%f,"p50":%%f,"p95":%%f,"p99":%%f,"max":%%f,' ..
    '"created":%%d,"other":%%d,"socket_errors":%%d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1e3,
    latency:percentile(95) / 1e3, latency:percentile(99) / 1e3, latency.max / 1e3, c, o,
    summary.errors.connect + summary.errors.read + summary.errors.write +
    summary.errors.timeout))
end
"""


def oppiva(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [OPPIVA, *args], env=env, input=stdin, capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise SystemExit(f"oppiva {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def setup(env: dict[str, str], url: str, folder: Path, customers: int, weeks: int) -> str:
    sim = folder / "simulated"
    oppiva(env, "init")
    oppiva(env, "simulate", "--customers", str(customers), "--weeks", str(weeks), "--out", str(sim))
    oppiva(env, "import", "stores", str(sim / "stores.csv"))
    oppiva(env, "import", "products", str(sim / "products.csv"))
    oppiva(env, "import", "customers", str(sim / "customers.csv"))
    oppiva(env, "import", "receipts", str(sim / "receipts.csv"))
    rules = folder / "rules.yaml"
    rules.write_text(RULES)
    oppiva(env, "loyalty", "create", "plussa", "Plussa", "--rules", str(rules))

    os.environ.update(env)
    from oppiva.db import Store
    from oppiva.loyalty import ledger

    store = Store(url)
    with store.transaction() as session:
        ids = [row[0] for row in session.execute(text("SELECT id FROM customer ORDER BY id"))]
        for customer_id in ids:
            ledger.join(session, "plussa", customer_id)
    store.engine.dispose()
    out = oppiva(env, "keys", "create", "till", "--scope", "receipts:write", "--store", STORE)
    found = re.search(r"opk_\S+", out)
    if not found:
        raise SystemExit(f"no key in: {out}")
    print(f"setup: {len(ids)} members joined, key bound to {STORE}")
    return found.group(0)


def settle(url: str) -> None:
    """VACUUM ANALYZE the freshly loaded database, as autovacuum would before the tills open: the
    planner needs statistics (this host's PostgreSQL runs without autovacuum)."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("VACUUM ANALYZE"))
    engine.dispose()


def lua_script(folder: Path, key: str, run: str) -> Path:
    sim = folder / "simulated"
    with open(sim / "customers.csv", newline="") as f:
        cards = [r["card"] for r in csv.DictReader(f) if r["card"]]
    with open(sim / "products.csv", newline="") as f:
        products = [(r["sku"], r["price"]) for r in csv.DictReader(f)]
    script = folder / f"till-{run}.lua"
    script.write_text(
        LUA
        % {
            "cards": ",".join(f'"{c}"' for c in cards),
            "skus": ",".join(f'"{s}"' for s, _ in products),
            "prices": ",".join(f'"{p}"' for _, p in products),
            "key": key,
            "run": run,
            "store": STORE,
        }
    )
    return script


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(env: dict[str, str], kind: str, port: int) -> subprocess.Popen[bytes]:
    if kind == "serve" or kind.startswith("serve-"):
        workers = kind.removeprefix("serve").removeprefix("-") or "1"
        cmd = [OPPIVA, "serve", "--port", str(port), "--workers", workers]
    else:
        workers = kind.removeprefix("uvicorn-")
        cmd = [
            str(BIN / "uvicorn"),
            "oppiva.api.app:create_app",
            "--factory",
            "--port",
            str(port),
            "--workers",
            workers,
            "--no-access-log",
            "--log-level",
            "warning",
        ]
    server = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    # A loaded machine may take a minute to import the app in every worker.
    for _ in range(900):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/docs", timeout=1)
            return server
        except OSError:
            time.sleep(0.1)
    stop_server(server)
    raise SystemExit(f"{kind} did not start")


def cpu_seconds(pid: int) -> float:
    """User and system CPU of a process and its children (the workers), from /proc."""
    children = subprocess.run(
        ["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False
    ).stdout.split()
    return sum(process_cpu(pid, *map(int, children)).values())


def process_cpu(*pids: int) -> dict[int, float]:
    """User and system CPU seconds of each process that still runs, from /proc."""
    out = {}
    for each in pids:
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        out[each] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def backend_cpu(admin: Engine, database: str) -> dict[int, float]:
    """CPU seconds of each PostgreSQL backend serving `database` (the server's pool), when
    PostgreSQL runs on this host."""
    with admin.connect() as conn:
        pids = conn.execute(
            text(
                "SELECT pid FROM pg_stat_activity WHERE datname = :db AND pid <> pg_backend_pid()"
            ),
            {"db": database},
        ).scalars()
        return process_cpu(*pids)


def stop_server(server: subprocess.Popen[bytes]) -> None:
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def wrk(script: Path, port: int, connections: int, seconds: int) -> dict[str, float]:
    threads = min(2, connections)
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "5s",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


@dataclass(frozen=True)
class Scratch:
    """A scratch PostgreSQL database: its name, its URL, the environment that points oppiva at
    it, and an autocommit engine on the server for reading its backends' CPU."""

    name: str
    url: str
    env: dict[str, str]
    admin: Engine


@contextmanager
def scratch_database(prefix: str, keep: bool) -> Iterator[Scratch]:
    """Create a database on `POSTGRES_URL` for one benchmark run; drop it afterwards unless
    `keep`."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    env = {
        **os.environ,
        "OPPIVA_DATABASE_URL": url,
        "OPPIVA_SECRET_KEY": os.environ.get("OPPIVA_SECRET_KEY", "benchmark-key"),
    }
    try:
        yield Scratch(name, url, env, admin)
        if keep:
            print(f"database {name} kept")
    finally:
        if not keep:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--weeks", type=int, default=4)
    parser.add_argument("--duration", type=int, default=30, help="seconds per measured run")
    parser.add_argument("--warmup", type=int, default=5, help="seconds of warm-up per server")
    parser.add_argument("--connections", default="4,8,16")
    parser.add_argument("--servers", default="serve,serve-2")
    parser.add_argument("--keep", action="store_true", help="leave the database and server up")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed (apt-get install wrk)")

    print(f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    fast = [module for module in ("uvloop", "httptools") if importlib.util.find_spec(module)]
    print(f"uvicorn with {', '.join(fast) or 'asyncio and h11'}")
    posted = 0
    with scratch_database("oppiva_till", args.keep) as db:
        name, url, env, admin = db.name, db.url, db.env, db.admin
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            key = setup(env, url, folder, args.customers, args.weeks)
            engine = create_engine(url)
            with engine.connect() as conn:
                before = conn.execute(text("SELECT count(*) FROM points_lot")).scalar_one()
            for kind in args.servers.split(","):
                port = free_port()
                server = start_server(env, kind, port)
                try:
                    warm = wrk(lua_script(folder, key, f"W{kind}"), port, 8, args.warmup)
                    posted += int(warm["created"])
                    # The warm-up's receipts gave the points tables their first rows: plan on
                    # statistics that know them, as autovacuum's ANALYZE would in a day's trade.
                    settle(url)
                    for c in (int(x) for x in args.connections.split(",")):
                        load = os.getloadavg()[0]
                        cpu = cpu_seconds(server.pid)
                        pg = backend_cpu(admin, name)
                        r = wrk(lua_script(folder, key, f"B{kind}-{c}"), port, c, args.duration)
                        cpu = cpu_seconds(server.pid) - cpu
                        pg_cpu = sum(
                            t - pg.get(p, 0.0) for p, t in backend_cpu(admin, name).items()
                        )
                        posted += int(r["created"])
                        print(
                            f"{kind:10s} c={c:3d} {r['requests'] / r['seconds']:7.1f} receipts/s  "
                            f"p50 {r['p50']:6.1f} ms  p95 {r['p95']:6.1f} ms  "
                            f"p99 {r['p99']:6.1f} ms  max {r['max']:6.1f} ms  "
                            f"201 {int(r['created'])}  other {int(r['other'])}  "
                            f"socket errors {int(r['socket_errors'])}  "
                            f"server CPU {1000 * cpu / max(1, r['requests']):.1f} ms/receipt  "
                            f"PostgreSQL CPU {1000 * pg_cpu / max(1, r['requests']):.1f} ms/receipt  "
                            f"load {load:.2f}/{os.getloadavg()[0]:.2f}",
                            flush=True,
                        )
                finally:
                    stop_server(server)
            with engine.connect() as conn:
                stored = conn.execute(
                    text(
                        "SELECT count(*) FROM receipt WHERE source = 'till' "
                        "AND (external_id LIKE 'B%' OR external_id LIKE 'W%')"
                    )
                ).scalar_one()
                lots = conn.execute(text("SELECT count(*) FROM points_lot")).scalar_one() - before
            engine.dispose()
            print(f"answered 201: {posted}; receipts stored: {stored}; points lots added: {lots}")


if __name__ == "__main__":
    main()
