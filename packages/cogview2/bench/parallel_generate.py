"""Prompts per minute of ``generate --prompts-file`` in 1 process and in N processes (torchrun).

    python packages/cogview2/bench/parallel_generate.py [--prompts 16] [--nproc 2]
        [--threads 1] [--weights DIR] [--stages coarse,dsr] [--repeats 2]

Each process uses ``--threads`` CPU threads (1: one process per core). Both runs draw the same
images (one per prompt) into fresh folders; the script checks that their PNGs are
byte-identical and prints a markdown table:

- *wall*: the whole command, from the start of Python to the merged manifest (process start,
  loading the weights, the process group);
- *loop*: the generation itself, the largest per-rank sum of the manifest's per-image seconds;
- *others' CPU*: the mean CPU % of every other process on the machine during the run.

The runs alternate (1, N, 1, N, ...) ``--repeats`` times and the fastest of each counts. Run it
on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

PROMPTS = (
    "red apple", "panda", "smiling face", "cat face", "dog face", "rocket", "sun", "pizza",
    "grinning face", "heart", "star", "tree", "house", "car", "flower", "moon",
)  # fmt: skip


class ForeignLoad:
    """Mean CPU % of the processes that are not this script's (other users of the machine),
    sampled every second while a run goes on: a run beside other work is not a clean figure."""

    def __init__(self) -> None:
        import psutil

        self.psutil, self.samples, self.stop = psutil, [], threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        me = self.psutil.Process()
        while not self.stop.wait(1.0):
            own = {me.pid} | {c.pid for c in me.children(recursive=True)}
            total = 0.0
            for p in (
                self.psutil.process_iter()
            ):  # cached Process objects: cpu_percent since the last sample
                if p.pid not in own:
                    with contextlib.suppress(self.psutil.Error):
                        total += p.cpu_percent(None)
            self.samples.append(total)

    def __enter__(self) -> ForeignLoad:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()

    @property
    def mean(self) -> float:
        return sum(self.samples[1:]) / max(len(self.samples) - 1, 1)


def run(
    nproc: int, prompts: Path, out: Path, args: argparse.Namespace
) -> tuple[float, float, float]:
    """(wall seconds, loop seconds, mean foreign CPU %) of one run."""
    cmd = [sys.executable, "-m", "cogview2"]
    if nproc > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc-per-node={nproc}", "-m", "cogview2"]  # fmt: skip
    cmd += ["generate", "--prompts-file", str(prompts), "-n", "1", "--seed", "0", "-o", str(out),
            "--threads", str(args.threads), "--quiet", "--no-grid", "--stages", args.stages]  # fmt: skip
    if args.weights:
        cmd += ["--weights", args.weights]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    with ForeignLoad() as load:
        start = time.perf_counter()
        subprocess.run(cmd, env=env, check=True)
        wall = time.perf_counter() - start
    per_rank: dict[int, float] = {}
    for line in (out / "manifest.jsonl").read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        per_rank[r["rank"]] = per_rank.get(r["rank"], 0.0) + sum(r["seconds"].values())
    return wall, max(per_rank.values()), load.mean


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=16, help="prompts (one image each)")
    parser.add_argument("--nproc", type=int, default=2, help="processes of the parallel run")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per process")
    parser.add_argument("--weights", default=None, help="weights folder (default: the demo)")
    parser.add_argument("--stages", default="coarse,dsr", help="stages to run")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each; the fastest counts")
    args = parser.parse_args()
    prompts = [PROMPTS[i % len(PROMPTS)] + ("" if i < len(PROMPTS) else f" {i}")
               for i in range(args.prompts)]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "prompts.txt").write_text("\n".join(prompts) + "\n", encoding="utf-8")
        runs: dict[int, list[tuple[float, float, float]]] = {1: [], args.nproc: []}
        for r in range(args.repeats):  # alternating, so that a disturbance hits both alike
            for nproc in (1, args.nproc):
                out = root / f"out{nproc}-{r}"
                runs[nproc].append(run(nproc, root / "prompts.txt", out, args))
        for nproc, results in runs.items():
            print(f"{nproc} process(es): " + ", ".join(
                f"wall {w:.1f} s loop {lo:.1f} s (others' CPU {f:.0f} %)" for w, lo, f in results
            ))  # fmt: skip
        rows = {n: min(results) for n, results in runs.items()}  # the least disturbed
        same = all(
            p.read_bytes() == (root / f"out{args.nproc}-0" / p.name).read_bytes()
            for p in (root / "out1-0").glob("*.png")
        )
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {when}; "
          f"{args.prompts} prompts, 1 image each, stages {args.stages}, --threads "
          f"{args.threads} per process; PNGs identical: {same}\n")  # fmt: skip
    print(
        "| processes | wall (s) | prompts/min (wall) | loop (s) | prompts/min (loop) | others' CPU |"
    )
    print("|---|---|---|---|---|---|")
    for nproc, (wall, loop, other) in rows.items():
        print(f"| {nproc} | {wall:.1f} | {60 * args.prompts / wall:.1f} | {loop:.1f} | "
              f"{60 * args.prompts / loop:.1f} | {other:.0f} % |")  # fmt: skip
    (w1, l1, _), (wn, ln, _) = rows[1], rows[args.nproc]
    print(f"\nspeed-up of {args.nproc} processes: {w1 / wn:.2f}x (wall), {l1 / ln:.2f}x (loop)")


if __name__ == "__main__":
    main()
