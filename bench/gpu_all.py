"""Every GPU test and benchmark of the monorepo in one run, within a time budget.

    python bench/gpu_all.py --out gpu-results            # on a CUDA machine (<= 9 min)
    python bench/gpu_all.py --dry-run --out /tmp/dry     # the same steps on CPU, tiny shapes (CI)

Each step runs as its own process with its own timeout, cut further so that the whole run ends
within ``--budget`` seconds; a failed or timed-out step is recorded and the next one runs. Writes
``gpu_all.json`` (per step: command, exit code, seconds, output) and ``gpu_all.md`` (a table of the
steps, then each step's output, which holds its Markdown tables) into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


@dataclass(frozen=True)
class Step:
    """One command: on a GPU (``gpu``) and in the CPU dry run (``dry``), with a time limit."""

    name: str
    gpu: list[str]
    dry: list[str]
    timeout_s: int


def _bench(package: str, script: str) -> str:
    return str(ROOT / "packages" / package / "bench" / script)


def _tests(*names: str) -> list[str]:
    return [str(ROOT / "packages" / n / "tests") for n in names]


PACKAGES = ("icetk", "localattn", "cluster-sampling", "coglm-core", "cogview2")
STEPS = [
    Step("environment", [PY, "-m", "localattn.info"], [PY, "-m", "localattn.info"], 30),
    Step(
        "gpu-marked tests (every package)",
        [PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu", *_tests(*PACKAGES)],
        [
            PY,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-m",
            "gpu",
            "--co",
            *_tests(*PACKAGES),
        ],
        90,
    ),
    Step(
        "localattn: Triton and Flex tests, kernels compiled for CUDA",
        [
            PY,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            *_tests("localattn"),
            "-k",
            "triton or flex",
        ],
        [
            PY,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            *_tests("localattn"),
            "-k",
            "triton and neighborhood and not half",
        ],
        70,
    ),
    Step(
        "localattn: CogView2 patterns, triton vs flex vs reference",
        [PY, _bench("localattn", "gpu_bench.py"), "--reps", "10"],
        [
            PY,
            _bench("localattn", "gpu_bench.py"),
            "--small",
            "--reps",
            "1",
            "--batch",
            "1",
            "--heads",
            "2",
        ],
        80,
    ),
    Step(
        "localattn: neighborhood attention (issue shapes, NATTEN's FLUX-4K case)",
        [PY, _bench("localattn", "na_gpu_bench.py"), "--reps", "10"],
        [PY, _bench("localattn", "na_gpu_bench.py"), "--small", "--reps", "1"],
        80,
    ),
    Step(
        "cluster-sampling: samplers on CogView2 shapes",
        [
            PY,
            _bench("cluster-sampling", "bench_sampler.py"),
            "--device",
            "cuda",
            "--skip-reference",
        ],
        [PY, _bench("cluster-sampling", "bench_sampler.py"), "--quick", "--skip-reference"],
        40,
    ),
    Step(
        "coglm-core: 6B forward and cached decoding",
        [PY, _bench("coglm-core", "gpu_bench.py"), "--repeats", "2"],
        [
            PY,
            _bench("coglm-core", "gpu_bench.py"),
            "--tiny",
            "--device",
            "cpu",
            "--dtype",
            "float32",
            "--seq",
            "64",
            "--decode-steps",
            "4",
            "--repeats",
            "1",
        ],
        70,
    ),
    Step(
        "cogview2: 6B stage timings",
        [PY, _bench("cogview2", "gpu_6b.py"), "--repeats", "2"],
        [PY, _bench("cogview2", "gpu_6b.py"), "--quick", "--device", "cpu"],
        80,
    ),
    Step(
        "cogview2: memory plans (medium preset)",
        [
            PY,
            _bench("cogview2", "memory_plans.py"),
            "--preset",
            "medium",
            "--device",
            "cuda",
            "--folder",
            "/tmp/cogview2-medium",
        ],
        [
            PY,
            _bench("cogview2", "memory_plans.py"),
            "--preset",
            "small",
            "--device",
            "cpu",
            "--folder",
            "/tmp/cogview2-small-dry",
        ],
        60,
    ),
]


def run_step(step: Step, dry: bool, deadline: float) -> dict:
    cmd = step.dry if dry else step.gpu
    limit = max(1, min(step.timeout_s, int(deadline - time.monotonic())))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if dry:  # Triton kernels run in the interpreter on CPU tensors
        env["TRITON_INTERPRET"] = "1"
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=limit)  # fmt: skip
        rc, output = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc = 124
        output = ((exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes)
                  else exc.stdout or "") + f"\n[timed out after {limit} s]"  # fmt: skip
    seconds = time.monotonic() - t0
    status = "ok" if rc == 0 else ("timeout" if rc == 124 else f"failed (rc {rc})")
    print(f"[{status}] {step.name}: {seconds:.1f} s", flush=True)
    return {**asdict(step), "command": cmd, "rc": rc, "status": status, "seconds": seconds,
            "limit_s": limit, "output": output[-20000:]}  # fmt: skip


def markdown(results: list[dict], header: str) -> str:
    lines = [header, "", "| step | status | seconds | limit s |", "|---|---|---|---|"]
    lines += [f"| {r['name']} | {r['status']} | {r['seconds']:.1f} | {r['limit_s']} |"
              for r in results]  # fmt: skip
    for r in results:
        lines += ["", f"## {r['name']}", "", "```", " ".join(r["command"]), "```", ""]
        table = [ln for ln in r["output"].splitlines() if ln.startswith("|")]
        lines += table or ["```", r["output"][-3000:].strip(), "```"]
    return "\n".join(lines) + "\n"


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny shapes (CI)")
    parser.add_argument("--out", type=Path, default=ROOT / "gpu-results")
    parser.add_argument("--budget", type=int, default=540, help="seconds for the whole run")
    parser.add_argument("--only", nargs="+", default=None, help="step-name substrings to run")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + args.budget
    header = (f"# GPU run{' (dry run, CPU)' if args.dry_run else ''}: "
              f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.node()}, "
              f"python {platform.python_version()}")  # fmt: skip
    steps = [s for s in STEPS if not args.only or any(o in s.name for o in args.only)]
    results = []
    for step in steps:
        if time.monotonic() >= deadline:
            results.append({**asdict(step), "command": step.dry if args.dry_run else step.gpu,
                            "rc": None, "status": "skipped (budget spent)", "seconds": 0.0,
                            "limit_s": 0, "output": ""})  # fmt: skip
            continue
        results.append(run_step(step, args.dry_run, deadline))
        # rewrite both files after every step: a run cut short keeps what it measured
        _write(args.out / "gpu_all.json", json.dumps(
            {"header": header, "dry_run": args.dry_run, "steps": results}, indent=1))  # fmt: skip
        _write(args.out / "gpu_all.md", markdown(results, header))
    failed = [r["name"] for r in results if r["rc"] != 0]
    print(f"wrote {args.out}/gpu_all.json and gpu_all.md; failed: {failed or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
