"""How fast the retail simulator writes a chain's import files, and how much memory it takes.

Simulates N members over W weeks into a temporary directory (or --out) in the chosen format,
then prints members/s, receipt lines/s, every file's size and the peak memory (the process's
maximum resident set from getrusage, before and after). The physical anchor: writing the
same number of bytes from memory to the same disk with plain writes, so the ratio says how
far the simulator is from the speed of its own output.

    .venv/bin/python benchmarks/simulate.py [--customers 100000] [--weeks 52] [--format csv]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

from oppiva.demo.simulator import FORMATS, simulate


def peak_mib() -> float:
    """The process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def anchor(directory: Path, size: int) -> float:
    """Seconds to write `size` bytes in 8 MiB blocks to a file in `directory`."""
    block = os.urandom(8 << 20)
    path = directory / "anchor.bin"
    start = time.perf_counter()
    with path.open("wb") as f:
        written = 0
        while written < size:
            f.write(block[: min(len(block), size - written)])
            written += len(block)
    seconds = time.perf_counter() - start
    path.unlink()
    return seconds


def run(args: argparse.Namespace, out: Path) -> None:
    """Simulate into `out` and print the figures."""
    before = peak_mib()
    start = time.perf_counter()
    summary = simulate(args.customers, args.stores, args.weeks, args.seed, out, fmt=args.format)
    seconds = time.perf_counter() - start
    peak = peak_mib()
    total = sum(path.stat().st_size for path in summary.files)
    print(
        f"{summary.customers:,} members (+{summary.shoppers:,} non-members), "
        f"{summary.receipts:,} receipts, {summary.lines:,} lines in {seconds:.1f} s: "
        f"{summary.customers / seconds:,.0f} customers/s, {summary.lines / seconds:,.0f} lines/s"
    )
    for path in summary.files:
        print(f"  {path.name:24s} {path.stat().st_size / 2**20:10,.1f} MiB")
    print(f"  {'all files':24s} {total / 2**20:10,.1f} MiB")
    print(f"peak memory {peak:,.0f} MiB (after imports {before:,.0f} MiB)")
    plain = anchor(out, total)
    print(
        f"anchor: the same {total / 2**20:,.0f} MiB written plainly in {plain:.1f} s "
        f"({total / 2**20 / plain:,.0f} MiB/s); simulator at {plain / seconds:.2f} of that speed"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--weeks", type=int, default=52)
    parser.add_argument("--stores", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--format", choices=FORMATS, default="csv")
    parser.add_argument("--out", type=Path, help="keep the files here (default: a temporary dir)")
    args = parser.parse_args()
    print(
        f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"{args.customers:,} members, {args.weeks} weeks, {args.stores} stores, {args.format}"
    )
    if args.out is not None:
        run(args, args.out)
        return
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
        run(args, Path(tmp))


if __name__ == "__main__":
    main()
