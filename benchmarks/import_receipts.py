"""Bulk import speed: simulated receipt lines into SQLite and PostgreSQL, against the bare load.

Simulates a chain (`oppiva.demo.simulator`) until the receipts file holds the asked number of
lines, then, on each database, times `oppiva import receipts` (validation, identification,
idempotency included) in a child process, with its peak memory, and in the same run the
physical anchor: the `sqlite3` shell's `.import` of the same CSV into a bare table, and
`psql \\copy` into a bare table. Prints lines/s and the ratio to the anchor.

    .venv/bin/python benchmarks/import_receipts.py [--lines 5000000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

POSTGRES_URL = os.environ.get(
    "OPPIVA_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
OPPIVA = str(Path(sys.executable).with_name("oppiva"))


def simulate(folder: Path, lines: int) -> Path:
    """Simulated files whose receipts file is cut (at a receipt's end) after `lines` lines."""
    from oppiva.demo.simulator import simulate as run

    customers = max(1000, lines // 60)
    while True:
        run(customers=customers, stores=8, weeks=52, seed=1, out=folder)
        receipts = folder / "receipts.csv"
        with receipts.open() as f:
            total = sum(1 for _ in f) - 1
        if total >= lines:
            break
        customers = int(customers * lines / max(total, 1) * 1.1) + 1
    cut = folder / "receipts-cut.csv"
    with receipts.open() as src, cut.open("w") as out:
        header = src.readline()
        out.write(header)
        last_key, n = None, 0
        for line in src:
            key = line.split(",", 2)[:2]
            if n >= lines and key != last_key:
                break
            out.write(line)
            last_key, n = key, n + 1
    return cut


def child(command: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Seconds and peak resident memory (bytes) of a child command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return seconds, max(peak, before) * 1024


def header(path: Path) -> list[str]:
    return path.open().readline().strip().split(",")


def prepare(url: str, folder: Path, env: dict[str, str]) -> None:
    """A new store with the simulated stores and products, ready for the receipts."""
    oppiva = [OPPIVA, "--database", url]
    subprocess.run([*oppiva, "init"], env=env, check=True, stdout=subprocess.DEVNULL)
    for kind, name in (("stores", "stores.csv"), ("products", "products.csv")):
        subprocess.run(
            [*oppiva, "import", kind, str(folder / name)],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )


def run_sqlite(folder: Path, receipts: Path, lines: int, env: dict[str, str]) -> None:
    url = f"sqlite:///{folder / 'bench.db'}"
    prepare(url, folder, env)
    seconds, peak = child([OPPIVA, "--database", url, "import", "receipts", str(receipts)], env)
    bare = folder / "bare.db"
    columns = ", ".join(f'"{c}" TEXT' for c in header(receipts))
    anchor_started = time.perf_counter()
    subprocess.run(
        [
            "sqlite3",
            str(bare),
            f"CREATE TABLE bare ({columns});",
            ".mode csv",
            f".import --skip 1 {receipts} bare",
        ],
        check=True,
    )
    anchor = time.perf_counter() - anchor_started
    report("sqlite", lines, seconds, anchor, peak, "sqlite3 .import")


def run_postgres(folder: Path, receipts: Path, lines: int, env: dict[str, str]) -> None:
    name = f"oppiva_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(POSTGRES_URL).set(database=name)
    try:
        db = url.render_as_string(hide_password=False)
        prepare(db, folder, env)
        seconds, peak = child([OPPIVA, "--database", db, "import", "receipts", str(receipts)], env)
        plain = url.set(drivername="postgresql").render_as_string(hide_password=False)
        columns = ", ".join(f'"{c}" text' for c in header(receipts))
        subprocess.run(["psql", plain, "-q", "-c", f"CREATE TABLE bare ({columns})"], check=True)
        anchor_started = time.perf_counter()
        subprocess.run(
            ["psql", plain, "-q", "-c", f"\\copy bare FROM '{receipts}' CSV HEADER"], check=True
        )
        anchor = time.perf_counter() - anchor_started
        report("postgresql", lines, seconds, anchor, peak, "psql \\copy")
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def report(
    backend: str, lines: int, seconds: float, anchor: float, peak: int, anchor_name: str
) -> None:
    ours, bare = lines / seconds, lines / anchor
    print(
        f"{backend:10s} oppiva import {ours:12,.0f} lines/s ({seconds:6.1f} s, peak {peak / 2**20:6.0f} MiB)   "
        f"{anchor_name} {bare:12,.0f} lines/s ({anchor:6.1f} s)   ratio {ours / bare:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=5_000_000)
    parser.add_argument("--keep", type=Path, help="Keep the simulated files in this folder.")
    args = parser.parse_args()
    for tool in ("sqlite3", "psql"):
        if shutil.which(tool) is None:
            sys.exit(f"the anchor needs the `{tool}` command (Debian: sqlite3, postgresql-client)")
    folder = args.keep or Path(tempfile.mkdtemp(prefix="oppiva-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OPPIVA_SECRET_KEY": os.environ.get("OPPIVA_SECRET_KEY", "benchmark-key")}
    print(
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; simulating {args.lines:,} lines"
    )
    started = time.perf_counter()
    receipts = simulate(folder, args.lines)
    with receipts.open() as f:
        lines = sum(1 for _ in f) - 1
    print(
        f"simulated {lines:,} receipt lines in {time.perf_counter() - started:.0f} s ({receipts.stat().st_size / 2**20:.0f} MiB)"
    )
    try:
        run_sqlite(folder, receipts, lines, env)
        run_postgres(folder, receipts, lines, env)
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
