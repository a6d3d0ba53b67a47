"""Run every benchmark script (benchmarks/bench_*.py) in turn; each prints its figures and ratios.

usage: python benchmarks/run.py [--quick] [NAME ...]    (NAME: e.g. foundation, packaging)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller data sets, for a smoke run")
    parser.add_argument("names", nargs="*")
    args = parser.parse_args()
    scripts = sorted(HERE.glob("bench_*.py"))
    if args.names:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in args.names]
    failures = 0
    for script in scripts:
        print(f"\n=== {script.stem.removeprefix('bench_')} ===", flush=True)
        started = time.monotonic()
        command = [sys.executable, str(script), *(["--quick"] if args.quick else [])]
        result = subprocess.run(command, cwd=HERE, check=False)  # noqa: S603
        failures += result.returncode != 0
        print(f"--- {script.name}: exit {result.returncode} in {time.monotonic() - started:.0f}s", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
