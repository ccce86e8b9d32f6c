"""The README's main command under each thread policy, on an idle machine and beside a busy one.

    python packages/cogview2/bench/threads.py [--policies torch 1 auto] [--repeats 1]
                                               [--command generate "red apple" -n 4 --seed 0]

For every policy the command runs once with the machine otherwise idle and once beside one
competing process that keeps a core busy (a pure-Python loop, as a second job on a laptop or a
shared server does). ``torch`` is torch's own default (one thread per core, what the CLI did
before ``--threads``); ``1``, ``2`` ... fix the count; ``auto`` is the CLI's default (the cores
idle when the command starts). Prints a markdown table of wall seconds and the slowdown beside
the busy process; run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUSY_LOOP = "import time\nend = time.time() + {seconds}\nwhile time.time() < end:\n    pass\n"


def run_once(command: list[str], policy: str, busy: bool, out: Path, limit: float) -> float:
    """Wall seconds of ``cogview2 <command>`` under ``policy``, beside a busy loop if ``busy``."""
    env = dict(os.environ)
    env.pop("OMP_NUM_THREADS", None)
    args = [sys.executable, "-m", "cogview2.cli", *command, "-o", str(out), "--quiet"]
    if policy != "torch":
        args += ["--threads", policy]
    else:  # torch's default pool: one thread per core
        args += ["--threads", str(os.cpu_count())]
    hog = None
    if busy:
        hog = subprocess.Popen([sys.executable, "-c", BUSY_LOOP.format(seconds=limit)])
        time.sleep(1.0)  # the competitor is running before the command starts
    try:
        start = time.perf_counter()
        subprocess.run(args, env=env, check=True, timeout=limit, capture_output=True)
        return time.perf_counter() - start
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--policies", nargs="+", default=["torch", "1", "auto"])
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--limit", type=float, default=900.0, help="seconds per run at most")
    p.add_argument("--command", nargs=argparse.REMAINDER,
                   default=["generate", "red apple", "-n", "4", "--seed", "0"])  # fmt: skip
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for policy in args.policies:
            times = {}
            for busy in (False, True):
                out = Path(tmp) / f"{policy}-{busy}"
                runs = [
                    run_once(args.command, policy, busy, out / str(r), args.limit)
                    for r in range(args.repeats)
                ]
                times[busy] = min(runs)
                print(f"{policy:>6} {'busy' if busy else 'idle'}: {times[busy]:.1f} s", flush=True)
            rows.append((policy, times[False], times[True]))
    print(f"\n`cogview2 {' '.join(args.command)}`, {os.cpu_count()} cores "
          f"({platform.processor() or platform.machine()}), {time.strftime('%Y-%m-%d %H:%M')}\n")  # fmt: skip
    print("| threads | idle (s) | beside one busy process (s) | slowdown |")
    print("|---|---|---|---|")
    for policy, idle, busy in rows:
        print(f"| {policy} | {idle:.1f} | {busy:.1f} | {busy / idle:.2f}× |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
