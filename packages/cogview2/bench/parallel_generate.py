"""Prompts per minute of ``generate --prompts-file`` in 1 process and in N processes (torchrun).

    python packages/cogview2/bench/parallel_generate.py [--prompts 16] [--nproc 2]
        [--threads 1] [--weights DIR] [--stages coarse,dsr]

Each process uses ``--threads`` CPU threads (1: one process per core). Both runs draw the same
images (one per prompt) into fresh folders; the script checks that their PNGs are
byte-identical and prints a markdown table:

- *wall*: the whole command, from the start of Python to the merged manifest (process start,
  loading the weights, the process group);
- *loop*: the generation itself, the largest per-rank sum of the manifest's per-image seconds.

Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

PROMPTS = (
    "red apple", "panda", "smiling face", "cat face", "dog face", "rocket", "sun", "pizza",
    "grinning face", "heart", "star", "tree", "house", "car", "flower", "moon",
)  # fmt: skip


def run(nproc: int, prompts: Path, out: Path, args: argparse.Namespace) -> tuple[float, float]:
    """(wall seconds, loop seconds) of one run."""
    cmd = [sys.executable, "-m", "cogview2"]
    if nproc > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc-per-node={nproc}", "-m", "cogview2"]  # fmt: skip
    cmd += ["generate", "--prompts-file", str(prompts), "-n", "1", "--seed", "0", "-o", str(out),
            "--threads", str(args.threads), "--quiet", "--no-grid", "--stages", args.stages]  # fmt: skip
    if args.weights:
        cmd += ["--weights", args.weights]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True)
    wall = time.perf_counter() - start
    per_rank: dict[int, float] = {}
    for line in (out / "manifest.jsonl").read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        per_rank[r["rank"]] = per_rank.get(r["rank"], 0.0) + sum(r["seconds"].values())
    return wall, max(per_rank.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=16, help="prompts (one image each)")
    parser.add_argument("--nproc", type=int, default=2, help="processes of the parallel run")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per process")
    parser.add_argument("--weights", default=None, help="weights folder (default: the demo)")
    parser.add_argument("--stages", default="coarse,dsr", help="stages to run")
    args = parser.parse_args()
    prompts = [PROMPTS[i % len(PROMPTS)] + ("" if i < len(PROMPTS) else f" {i}")
               for i in range(args.prompts)]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "prompts.txt").write_text("\n".join(prompts) + "\n", encoding="utf-8")
        rows = {}
        for nproc in (1, args.nproc):
            rows[nproc] = run(nproc, root / "prompts.txt", root / f"out{nproc}", args)
        same = all(
            p.read_bytes() == (root / f"out{args.nproc}" / p.name).read_bytes()
            for p in (root / "out1").glob("*.png")
        )
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {when}; "
          f"{args.prompts} prompts, 1 image each, stages {args.stages}, --threads "
          f"{args.threads} per process; PNGs identical: {same}\n")  # fmt: skip
    print("| processes | wall (s) | prompts/min (wall) | loop (s) | prompts/min (loop) |")
    print("|---|---|---|---|---|")
    for nproc, (wall, loop) in rows.items():
        print(f"| {nproc} | {wall:.1f} | {60 * args.prompts / wall:.1f} | {loop:.1f} | "
              f"{60 * args.prompts / loop:.1f} |")  # fmt: skip
    (w1, l1), (wn, ln) = rows[1], rows[args.nproc]
    print(f"\nspeed-up of {args.nproc} processes: {w1 / wn:.2f}x (wall), {l1 / ln:.2f}x (loop)")


if __name__ == "__main__":
    main()
