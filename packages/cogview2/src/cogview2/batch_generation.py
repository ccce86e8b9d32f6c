"""Data-parallel, resumable generation of a prompt list into one folder.

``cogview2 generate --prompts-file FILE`` runs here, in one process or under ``torchrun``
(one process per rank: gloo on CPU, NCCL on GPUs, rank ``r`` on ``cuda:LOCAL_RANK``)::

    torchrun --standalone --nproc-per-node 2 -m cogview2 generate --prompts-file p.txt -n 4 -o out/

The work is a list of *jobs*. A job is one image (prompt ``p``, image ``i``) whose random
stream is a `torch.Generator` seeded from ``(seed, p, i)`` alone; with ``--candidates`` or
``--post-select`` the images of a prompt compete with each other, so a job is then one prompt's
``n`` images, seeded from ``(seed, p)``. Ranks take the unfinished jobs round-robin. A job's
result depends only on its seed and the settings, never on the rank or the number of ranks, so
1 and N processes write byte-identical PNGs (same device type, dtype and threads per process).

The output folder holds:

- ``run.json``: the settings that decide the pictures (prompts hash, seed, ``n``, stages,
  style, candidates, guidance, weights, dtype, device type). A rerun with other settings is
  refused with a ValueError naming what differs; a rerun with the same ones resumes.
- one PNG per image, ``{p:03d}-{slug}-{i}.png``, each written atomically (a temporary file
  renamed onto the name), and a grid per prompt unless ``--no-grid``.
- ``manifest.jsonl``: one JSON object per finished image, sorted by (prompt, image):
  ``prompt``, ``prompt_index``, ``image_index``, ``seed``, ``job_seed``, ``job_images``,
  ``file``, ``score`` (caption log-likelihood of the prompt given the stage-1 image), ``seconds``
  (per stage, ``other`` = scoring, decoding and the PNG; those of the whole job).
  While a run goes on each rank appends to ``manifest.rank{r}.jsonl`` (one line per image,
  flushed and fsynced after its PNG is in place); rank 0 merges them at the end.

An image counts as finished when its manifest line exists and its PNG is there: a kill at any
moment loses at most the jobs in flight, and the rerun redoes only those.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported by the functions that need it
    from .pipeline import CogView2Pipeline

__all__ = [
    "MANIFEST_FILE",
    "RUN_FILE",
    "BatchResult",
    "BatchSettings",
    "Job",
    "check_run_settings",
    "distributed_session",
    "image_file",
    "job_seed",
    "plan_jobs",
    "read_manifest",
    "read_prompts",
    "run_batch",
    "share_threads",
]

RUN_FILE = "run.json"
MANIFEST_FILE = "manifest.jsonl"
_PART_GLOB = "manifest.rank*.jsonl"


# ----------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class BatchSettings:
    """What decides the pictures of a run (compared with ``run.json`` on a rerun).

    Attributes:
        num_images: Images per prompt (``-n``).
        seed: Base seed of every job's generator.
        style: Recipe name, or None (the weights' own).
        stages: Stage names, or None (the weights' own).
        candidates: Stage-1 samples per prompt of which the ``num_images`` best go on, or None.
        post_select: Order a prompt's images by caption score, best first.
        guidance: Classifier-free guidance scale of stage 1, or None (the weights' own).
        weights: Identity of the weights (`weights_identity`).
        dtype: Weight dtype name, or None (as stored).
        int8: Weight-only int8 linear layers.
        device_type: ``"cpu"`` or ``"cuda"`` (numerics differ between them).
    """

    num_images: int
    seed: int
    style: str | None = None
    stages: tuple[str, ...] | None = None
    candidates: int | None = None
    post_select: bool = False
    guidance: float | None = None
    weights: dict[str, str] = field(default_factory=lambda: {"name": "unknown"})
    dtype: str | None = None
    int8: bool = False
    device_type: str = "cpu"

    def __post_init__(self) -> None:
        if isinstance(self.num_images, bool) or not isinstance(self.num_images, int):
            raise ValueError(f"-n/--num-images must be an int >= 1, got {self.num_images!r}")
        if self.num_images < 1:
            raise ValueError(f"-n/--num-images must be an int >= 1, got {self.num_images!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"--seed must be an int, got {self.seed!r}")
        if self.candidates is not None and self.candidates < self.num_images:
            raise ValueError(
                f"--candidates must be >= -n/--num-images ({self.num_images}), got "
                f"{self.candidates}"
            )

    @property
    def per_prompt(self) -> bool:
        """A prompt's images are one job (their selection or order couples them)."""
        return self.candidates is not None or self.post_select

    def to_dict(self, prompts: Sequence[str]) -> dict[str, Any]:
        """The ``settings`` object of ``run.json`` for ``prompts``."""
        return {
            "prompts_sha256": _sha256("\n".join(prompts)),
            "num_prompts": len(prompts),
            "num_images": self.num_images,
            "seed": self.seed,
            "style": self.style,
            "stages": None if self.stages is None else list(self.stages),
            "candidates": self.candidates,
            "post_select": self.post_select,
            "guidance": self.guidance,
            "weights": dict(self.weights),
            "dtype": self.dtype,
            "int8": self.int8,
            "device_type": self.device_type,
        }


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def weights_identity(folder: Path | None) -> dict[str, str]:
    """``{"name": "tiny"}`` for None (the tiny random pipeline), else the folder's resolved path
    and the SHA-256 of its ``pipeline.json`` (the weights themselves are not hashed: a 6B
    folder would take minutes)."""
    from .folder_format import PIPELINE_FILE

    if folder is None:
        return {"name": "tiny"}
    manifest = Path(folder) / PIPELINE_FILE
    digest = hashlib.sha256(manifest.read_bytes()).hexdigest() if manifest.is_file() else ""
    return {"path": str(Path(folder).resolve()), "pipeline_json_sha256": digest}


def check_run_settings(folder: Path, settings: dict[str, Any], *, write: bool) -> None:
    """Refuse a folder that holds a run with other settings; record them in a new one.

    Args:
        folder: The output folder.
        settings: `BatchSettings.to_dict` of this run.
        write: Write ``run.json`` when it is absent (rank 0 only).

    Raises:
        ValueError: ``run.json`` exists with other settings (the message names each field that
            differs with both values) or cannot be read.
    """
    from coglm_core import atomic_write_text

    from . import __version__

    path = Path(folder) / RUN_FILE
    if path.is_file():
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))["settings"]
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(
                f"{path} is not a run file of cogview2 ({err}); use another -o"
            ) from None
        diffs = [
            f"{key}: {stored.get(key)!r} there, {settings.get(key)!r} now"
            for key in sorted(set(stored) | set(settings))
            if stored.get(key) != settings.get(key)
        ]
        if diffs:
            raise ValueError(
                f"-o/--output {folder} holds a run with other settings ({'; '.join(diffs)}); "
                "rerun with the same settings to resume it, or give another folder"
            )
        return
    if write:
        record = {"format": "cogview2-batch", "version": 1, "cogview2": __version__}
        atomic_write_text(path, json.dumps({**record, "settings": settings}, indent=2) + "\n")


# ----------------------------------------------------------------------------- jobs
@dataclass(frozen=True)
class Job:
    """One unit of work: some images of one prompt drawn with one generator.

    Attributes:
        prompt_index: Line of the prompt in the prompt list (0-based).
        image_indices: The images it writes (one, or all of a prompt's when they are coupled).
        seed: Seed of its `torch.Generator` (`job_seed`).
    """

    prompt_index: int
    image_indices: tuple[int, ...]
    seed: int


def job_seed(seed: int, prompt_index: int, image_index: int | None = None) -> int:
    """The generator seed of image ``image_index`` of prompt ``prompt_index`` (None: of the
    prompt's coupled job): the first 63 bits of a SHA-256 of the three numbers, so neighbouring
    seeds, prompts and images get unrelated streams."""
    key = f"cogview2-batch:{seed}:{prompt_index}:{'all' if image_index is None else image_index}"
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little") >> 1


def plan_jobs(num_prompts: int, settings: BatchSettings) -> list[Job]:
    """Every job of a run, in (prompt, image) order."""
    n = settings.num_images
    if settings.per_prompt:
        return [Job(p, tuple(range(n)), job_seed(settings.seed, p)) for p in range(num_prompts)]
    return [
        Job(p, (i,), job_seed(settings.seed, p, i)) for p in range(num_prompts) for i in range(n)
    ]


def _slug(text: str) -> str:
    slug = re.sub(r"[^\w]+", "-", text, flags=re.UNICODE).strip("-")
    return slug[:40] or "prompt"


def image_file(prompt: str, prompt_index: int, image_index: int | None, num_prompts: int) -> str:
    """``{p:03d}-{slug}-{i}.png`` (``-grid.png`` for None); the index is zero-padded to the
    width of the largest one, so the names sort in prompt order."""
    width = max(3, len(str(max(num_prompts - 1, 0))))
    tail = "grid" if image_index is None else str(image_index)
    return f"{prompt_index:0{width}d}-{_slug(prompt)}-{tail}.png"


def read_prompts(path: Path) -> list[str]:
    """The non-empty lines of a UTF-8 prompt file, stripped.

    Raises:
        FileNotFoundError: no such file.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"--prompts-file {path} not found")
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip()]


# ----------------------------------------------------------------------------- manifest
def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """The complete JSON lines of ``path`` (a line cut short by a kill is skipped)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "prompt_index" in record and "image_index" in record:
            yield record


def read_manifest(folder: Path) -> dict[tuple[int, int], dict[str, Any]]:
    """(prompt index, image index) → manifest record, from ``manifest.jsonl`` and the ranks'
    parts of a run in progress or killed (the latest record of an image wins)."""
    folder = Path(folder)
    records: dict[tuple[int, int], dict[str, Any]] = {}
    for path in [folder / MANIFEST_FILE, *sorted(folder.glob(_PART_GLOB))]:
        for r in _read_jsonl(path):
            records[(int(r["prompt_index"]), int(r["image_index"]))] = r
    return records


class _ManifestPart:
    """This rank's append-only manifest part: one line per image, fsynced."""

    def __init__(self, folder: Path, rank: int) -> None:
        self.path = Path(folder) / f"manifest.rank{rank}.jsonl"
        self.file = open(self.path, "a+b")  # noqa: SIM115 - closed by close()
        self.file.seek(0, os.SEEK_END)
        if self.file.tell():  # a line cut short by a kill: start on a fresh line
            self.file.seek(-1, os.SEEK_END)
            if self.file.read(1) != b"\n":
                self.file.write(b"\n")

    def append(self, record: dict[str, Any]) -> None:
        self.file.write(json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n")
        self.file.flush()
        os.fsync(self.file.fileno())

    def close(self) -> None:
        self.file.close()


def merge_manifest(folder: Path) -> int:
    """Write ``manifest.jsonl`` (sorted, one record per image whose PNG exists) from the
    previous one and the ranks' parts, atomically, then delete the parts; returns the count."""
    from coglm_core import atomic_write_text

    folder = Path(folder)
    parts = sorted(folder.glob(_PART_GLOB))
    records = read_manifest(folder)
    lines = [
        json.dumps(records[key], ensure_ascii=False)
        for key in sorted(records)
        if (folder / records[key]["file"]).is_file()
    ]
    atomic_write_text(folder / MANIFEST_FILE, "".join(line + "\n" for line in lines))
    for part in parts:
        part.unlink(missing_ok=True)
    return len(lines)


# ----------------------------------------------------------------------------- processes
@dataclass(frozen=True)
class Session:
    """This process's place in the run.

    Attributes:
        rank: 0 … world_size - 1.
        world_size: Processes in the run (1 without torchrun).
        local_rank: Rank on this node (selects ``cuda:LOCAL_RANK``).
        local_world_size: Processes on this node.
    """

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int

    def device(self, requested: str) -> str:
        """``requested`` with a bare ``cuda`` mapped to this rank's GPU when distributed."""
        if self.world_size > 1 and requested == "cuda":
            return f"cuda:{self.local_rank}"
        return requested

    def barrier(self) -> None:
        """Wait for every rank (no-op in one process)."""
        if self.world_size > 1:
            import torch.distributed as dist

            dist.barrier()


@contextmanager
def distributed_session() -> Iterator[Session]:
    """The process group of a ``torchrun`` launch (WORLD_SIZE > 1: gloo on CPU, NCCL when CUDA
    is available), destroyed on exit; one process without torchrun yields rank 0 of 1."""
    import torch.distributed as dist

    from coglm_core.training import init_distributed_from_env, world

    started = not dist.is_initialized() and init_distributed_from_env()
    rank, size = world()
    try:
        yield Session(
            rank,
            size,
            int(os.environ.get("LOCAL_RANK", "0")) if size > 1 else 0,
            int(os.environ.get("LOCAL_WORLD_SIZE", str(size))) if size > 1 else 1,
        )
    finally:
        if started and dist.is_initialized():
            dist.destroy_process_group()


def share_threads(threads: str | None, local_world_size: int) -> None:
    """Under torchrun with the ``auto`` thread policy (``threads`` None or ``"auto"`` and no
    ``$COGVIEW2_THREADS``), split the cores torch was given between this node's ranks: each
    rank measured the same idle cores. An explicit count is kept."""
    import torch

    from .threads import THREADS_ENV

    policy = threads if threads is not None else os.environ.get(THREADS_ENV, "auto")
    if local_world_size > 1 and str(policy).strip().lower() == "auto":
        torch.set_num_threads(max(1, torch.get_num_threads() // local_world_size))


def launched_by_torchrun() -> bool:
    """True when ``torchrun`` started this process with more than one rank."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


# ----------------------------------------------------------------------------- the run
@dataclass
class BatchResult:
    """What one rank did.

    Attributes:
        total_images: Images of the whole run.
        skipped: Images already finished before this run (all ranks).
        written: Images this rank wrote.
        seconds: Wall seconds of this rank's generation loop.
        manifest: The merged manifest (rank 0), else None.
    """

    total_images: int
    skipped: int
    written: int
    seconds: float
    manifest: Path | None = None


def _save_png(image: Any, path: Path) -> None:
    from coglm_core import atomic_path

    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")


def _grid(paths: Sequence[Path]) -> Any:
    import math

    from PIL import Image

    images = []
    for p in paths:
        with Image.open(p) as im:
            images.append(im.convert("RGB"))
    w, h = images[0].size
    cols = math.ceil(math.sqrt(len(images)))
    rows = -(-len(images) // cols)
    grid = Image.new("RGB", (cols * w, rows * h), "white")
    for i, im in enumerate(images):
        grid.paste(im, ((i % cols) * w, (i // cols) * h))
    return grid


def run_batch(
    load: Callable[[], CogView2Pipeline],
    prompts: Sequence[str],
    output: Path,
    settings: BatchSettings,
    session: Session,
    *,
    device: str = "cpu",
    grid: bool = True,
    log: Callable[[str], None] | None = print,
) -> BatchResult:
    """Generate every image of ``prompts`` into ``output``: this rank's share of the unfinished
    jobs, then (rank 0, after every rank is done) the merged manifest and the grids.

    Args:
        load: Builds the pipeline (called once, after the folder's settings are checked).
        prompts: The prompt list; its order defines the prompt indices.
        output: The folder (created if absent).
        settings: The run's settings (`BatchSettings`).
        session: This process's rank (`distributed_session`).
        device: Torch device of this rank's generators (e.g. ``cuda:1``).
        grid: Write a grid PNG per prompt.
        log: Receives one line per finished image and a summary (None: silent).

    Returns:
        `BatchResult` of this rank.

    Raises:
        ValueError: no prompts, a prompt the weights cannot take (too long; checked before any
            image is drawn), a file in place of the folder, or a folder holding a run with
            other settings.
    """
    import torch

    if not prompts:
        raise ValueError("give a prompt, or --prompts-file FILE with one prompt per line")
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise ValueError(f"-o/--output {output} is a file; give a folder for the images")
    output.mkdir(parents=True, exist_ok=True)
    check_run_settings(output, settings.to_dict(prompts), write=session.rank == 0)
    pipe = load()
    _check_prompts(pipe, prompts, settings.style)
    done = {
        key
        for key, record in read_manifest(output).items()
        if (output / record.get("file", "")).is_file()
    }
    jobs = plan_jobs(len(prompts), settings)
    todo = [j for j in jobs if not all((j.prompt_index, i) in done for i in j.image_indices)]
    total = len(prompts) * settings.num_images
    skipped = total - sum(len(j.image_indices) for j in todo)
    session.barrier()  # every rank has read the manifest before any rank appends to it
    mine = todo[session.rank :: session.world_size]
    part = _ManifestPart(output, session.rank)
    written, start = 0, time.perf_counter()
    tag = f"[rank {session.rank}] " if session.world_size > 1 else ""
    try:
        for job in mine:
            prompt = prompts[job.prompt_index]
            t0 = time.perf_counter()
            out = pipe(
                prompt,
                num_images=len(job.image_indices),
                style=settings.style,
                generator=torch.Generator(device=device).manual_seed(job.seed),
                stages=settings.stages,
                progress=False,
                post_select=settings.post_select,
                candidates=settings.candidates,
                guidance_scale=settings.guidance,
            )
            for i, image in zip(job.image_indices, out.images, strict=True):  # type: ignore[arg-type]
                _save_png(image, output / image_file(prompt, job.prompt_index, i, len(prompts)))
            seconds = {k: round(v, 4) for k, v in (out.stage_seconds or {}).items()}
            seconds["other"] = round(time.perf_counter() - t0 - sum(seconds.values()), 4)
            for k, i in enumerate(job.image_indices):
                name = image_file(prompt, job.prompt_index, i, len(prompts))
                part.append(
                    {
                        "prompt_index": job.prompt_index,
                        "image_index": i,
                        "prompt": prompt,
                        "seed": settings.seed,
                        "job_seed": job.seed,
                        "job_images": len(job.image_indices),
                        "file": name,
                        "score": None if out.scores is None else float(out.scores[k]),
                        "seconds": seconds,
                        "rank": session.rank,
                    }
                )
                written += 1
                if log is not None:
                    log(f"{tag}{name} ({sum(seconds.values()):.1f} s)")
    finally:
        part.close()
    elapsed = time.perf_counter() - start
    session.barrier()  # every rank's part is complete
    manifest = None
    if session.rank == 0:
        count = merge_manifest(output)
        manifest = output / MANIFEST_FILE
        if grid:
            _write_grids(output, prompts, settings.num_images)
        if log is not None:
            log(
                f"{count}/{total} images in {output} ({skipped} were there already; "
                f"{session.world_size} process(es)); manifest: {manifest}"
            )
    return BatchResult(total, skipped, written, elapsed, manifest)


def _check_prompts(pipe: CogView2Pipeline, prompts: Sequence[str], style: str | None) -> None:
    """Fail before any image is drawn when a prompt is too long for the weights (a run of
    hours should not stop at prompt 20,000)."""
    bad = []
    for p, prompt in enumerate(prompts):
        try:
            pipe.encode_prompt(prompt, style)
        except ValueError as err:
            bad.append((p, str(err)))
    if bad:
        p, reason = bad[0]
        raise ValueError(
            f"{len(bad)} of {len(prompts)} prompts cannot be drawn, e.g. prompt {p} "
            f"({prompts[p][:60]!r}): {reason}"
        )


def _write_grids(output: Path, prompts: Sequence[str], num_images: int) -> None:
    """A grid per prompt whose images are all there and whose grid is not."""
    for p, prompt in enumerate(prompts):
        path = output / image_file(prompt, p, None, len(prompts))
        images = [output / image_file(prompt, p, i, len(prompts)) for i in range(num_images)]
        if not path.exists() and all(x.is_file() for x in images):
            _save_png(_grid(images), path)
