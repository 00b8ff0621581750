"""Till-offer latency: `GET /v1/customers/{id}/offers?context=checkout&basket=...` over loopback
at a fixed rate (the target: p99 under 20 ms at 300 requests/s).

Setup (not timed), with the helpers of `benchmarks/till.py`: a scratch PostgreSQL database, a
simulated chain (`oppiva simulate`, `oppiva import`), consent for profiling and personal offers
from 9 members in 10, `oppiva offers train` as of the history's last day, `ANALYZE`, and an API key with
`offers:read`. Then, for each server (`serve`: `oppiva serve`, `serve-N`: `--workers N`): a
warm-up and a measured run of wrk paced to the rate: wrk is closed-loop, so each connection
waits `connections x 1000 / rate` ms before each request (Lua `delay()`); wrk's latency
excludes that wait. Each request names a random member and a basket of 1-6 random products,
as at noon of the history's last day. Prints the achieved rate, p50/p95/p99/max, the share of
answers with offers, the server's and PostgreSQL's CPU per request, and the load average
before and after.

    .venv/bin/python benchmarks/till_offers.py [--customers 2000] [--weeks 12] [--rate 300]
        [--duration 30] [--connections 12] [--servers serve,serve-2]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import shutil
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import create_engine, text
from till import (
    backend_cpu,
    cpu_seconds,
    free_port,
    oppiva,
    scratch_database,
    settle,
    start_server,
    stop_server,
    wrk,
)

FIRST_DAY = date(2025, 1, 6)  # the simulator's first Monday

LUA = r"""
local customers = {%(customers)s}
local skus = {%(skus)s}
local key = "%(key)s"
local at = "%(at)s"
local pause = %(pause)f
local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(tid * 7919 + os.time())
  ok = 0
  other = 0
  offered = 0
  wrk.headers["Authorization"] = "Bearer " .. key
end

function delay()
  return pause
end

function request()
  local n = math.random(1, 6)
  local basket = {}
  for i = 1, n do basket[i] = skus[math.random(#skus)] end
  local path = string.format("/v1/customers/%%d/offers?context=checkout&basket=%%s&at=%%s",
    customers[math.random(#customers)], table.concat(basket, ","), at)
  return wrk.format("GET", path)
end

function response(status, headers, body)
  if status == 200 then
    ok = ok + 1
    if string.find(body, '"sku"', 1, true) then offered = offered + 1 end
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local o, x, f = 0, 0, 0
  for _, t in ipairs(threads) do
    o = o + t:get("ok")
    x = x + t:get("other")
    f = f + t:get("offered")
  end
  io.write(string.format(
    'RESULT {"requests":%%d,"seconds":%%f,"p50":%%f,"p95":%%f,"p99":%%f,"max":%%f,' ..
    '"ok":%%d,"other":%%d,"offered":%%d,"socket_errors":%%d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1e3,
    latency:percentile(95) / 1e3, latency:percentile(99) / 1e3, latency.max / 1e3, o, x, f,
    summary.errors.connect + summary.errors.read + summary.errors.write +
    summary.errors.timeout))
end
"""


def setup(env: dict[str, str], url: str, folder: Path, customers: int, weeks: int) -> str:
    """The chain, consents, the offers batch and a key that may read offers."""
    sim = folder / "simulated"
    oppiva(env, "init")
    oppiva(env, "simulate", "--customers", str(customers), "--weeks", str(weeks), "--out", str(sim))
    for table in ("stores", "products", "customers", "receipts"):
        oppiva(env, "import", table, str(sim / f"{table}.csv"))
    engine = create_engine(url)
    with engine.begin() as conn:
        granted = conn.execute(
            text(
                "INSERT INTO consent_event "
                "(customer_id, purpose, channel, status, source, effective_at, recorded_at) "
                "SELECT c.id, p.purpose, 'email', 'granted', 'benchmark', "
                "TIMESTAMPTZ '2025-01-01 00:00+00', now() FROM customer c CROSS JOIN "
                "(VALUES ('profiling'), ('personalised_offers')) AS p(purpose) WHERE c.id % 10 <> 0"
            )
        ).rowcount
    engine.dispose()
    as_of = last_day(weeks)
    started = time.perf_counter()
    report = json.loads(oppiva(env, "offers", "train", "--as-of", as_of.isoformat(), "--json"))
    print(
        f"setup: {granted // 2} members consent; offers train as of {as_of} in "
        f"{time.perf_counter() - started:.1f} s: {report['known']:,} known, {report['new']:,} new "
        f"candidates, {report['neighbours']:,} neighbours"
    )
    settle(url)
    out = oppiva(env, "keys", "create", "till-offers", "--scope", "offers:read")
    found = re.search(r"opk_\S+", out)
    if not found:
        raise SystemExit(f"no key in: {out}")
    return found.group(0)


def last_day(weeks: int) -> date:
    return FIRST_DAY + timedelta(days=7 * weeks - 1)


def lua_script(
    folder: Path, url: str, key: str, at: str, connections: int, rate: float, run: str
) -> Path:
    engine = create_engine(url)
    with engine.connect() as conn:
        ids = conn.execute(text("SELECT id FROM customer ORDER BY id")).scalars().all()
    engine.dispose()
    with open(folder / "simulated" / "products.csv", newline="") as f:
        skus = [r["sku"] for r in csv.DictReader(f)]
    script = folder / f"till-offers-{run}.lua"
    script.write_text(
        LUA
        % {
            "customers": ",".join(str(i) for i in ids),
            "skus": ",".join(f'"{s}"' for s in skus),
            "key": key,
            "at": at.replace("+", "%2B"),
            "pause": connections * 1000.0 / rate,
        }
    )
    return script


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--weeks", type=int, default=12)
    parser.add_argument("--rate", type=float, default=300.0, help="requests per second")
    parser.add_argument("--duration", type=int, default=30, help="seconds per measured run")
    parser.add_argument("--warmup", type=int, default=5, help="seconds of warm-up per server")
    parser.add_argument("--connections", type=int, default=12)
    parser.add_argument("--servers", default="serve,serve-2")
    parser.add_argument("--keep", action="store_true", help="leave the database in place")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed (apt-get install wrk)")

    print(f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"load average at start {os.getloadavg()}")
    at = f"{last_day(args.weeks).isoformat()}T12:00:00+02:00"
    try:
        with scratch_database("oppiva_till_offers", args.keep) as db:
            name, url, env, admin = db.name, db.url, db.env, db.admin
            with tempfile.TemporaryDirectory() as tmp:
                folder = Path(tmp)
                key = setup(env, url, folder, args.customers, args.weeks)
                c = args.connections
                for kind in args.servers.split(","):
                    port = free_port()
                    server = start_server(env, kind, port)
                    try:
                        wrk(
                            lua_script(folder, url, key, at, c, args.rate, "w"),
                            port,
                            c,
                            args.warmup,
                        )
                        load = os.getloadavg()[0]
                        cpu = cpu_seconds(server.pid)
                        pg = backend_cpu(admin, name)
                        script = lua_script(folder, url, key, at, c, args.rate, kind)
                        r = wrk(script, port, c, args.duration)
                        cpu = cpu_seconds(server.pid) - cpu
                        pg_cpu = sum(
                            t - pg.get(p, 0.0) for p, t in backend_cpu(admin, name).items()
                        )
                        n = max(1, int(r["requests"]))
                        print(
                            f"{kind:8s} c={c} target {args.rate:.0f}/s: {n / r['seconds']:6.1f} "
                            f"requests/s  p50 {r['p50']:5.1f} ms  p95 {r['p95']:5.1f} ms  "
                            f"p99 {r['p99']:5.1f} ms  max {r['max']:6.1f} ms  200 {int(r['ok'])}  "
                            f"other {int(r['other'])}  socket errors {int(r['socket_errors'])}  "
                            f"with offers {100 * r['offered'] / n:.0f} %  "
                            f"server CPU {1000 * cpu / n:.2f} ms/request  "
                            f"PostgreSQL CPU {1000 * pg_cpu / n:.2f} ms/request  "
                            f"load {load:.2f}/{os.getloadavg()[0]:.2f}",
                            flush=True,
                        )
                    finally:
                        stop_server(server)
    finally:
        print(f"load average at end {os.getloadavg()}")


if __name__ == "__main__":
    main()
