"""The paper's MS-COCO evaluation (CogView2 §5.1, Table 1): FID-0/1/2/4/8 and IS.

CogView2 (as DALL-E and CogView before it) draws one image for each of 30,000 captions of the
MS-COCO validation set, the best of 16 samples by caption score, and compares them with the
validation images at 256 px; FID-k blurs both sides with a Gaussian filter of radius k first.

The pieces, each usable alone:

- `select_captions`: one caption per validation image (its first), up to ``n`` images drawn
  with a seeded sample, in image-id order.
- `prepare_image`: centre crop to a square, resize to ``size`` px (bicubic), Gaussian blur of
  radius ``k`` (Pillow's ``GaussianBlur``, as the DALL-E paper's FID-k), as (3, S, S) uint8.
- `load_inception`: torch-fidelity's ``FeatureExtractorInceptionV3`` (the TensorFlow FID
  Inception ported to PyTorch, with TensorFlow's resize to 299 px) from a local weights file;
  nothing is downloaded.
- `FeatureMoments`, `frechet_from_moments`, `inception_score`: the FID and IS formulas as
  torch-fidelity computes them (``metric_fid``, ``metric_isc``: 10 splits, shuffled with seed
  2020), on the 2048-d pool features and the 1008 unbiased logits.
- `coco_table`: the markdown row of Table 1.

Generation itself is `cogview2.batch_generation` (data-parallel under torchrun, resumable).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import random
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "BLUR_RADII",
    "CocoCaption",
    "CocoResults",
    "FeatureMoments",
    "coco_table",
    "frechet_from_moments",
    "inception_features",
    "inception_score",
    "load_inception",
    "prepare_image",
    "select_captions",
]

BLUR_RADII: tuple[int, ...] = (0, 1, 2, 4, 8)
"""The FID-k columns of the paper's Table 1."""


@dataclass(frozen=True)
class CocoCaption:
    """One evaluation caption.

    Attributes:
        image_id: COCO image id.
        file_name: The validation image's file name (in the ``--images`` folder).
        caption: The caption, whitespace collapsed to single spaces.
    """

    image_id: int
    file_name: str
    caption: str


def select_captions(
    captions_json: Path, images: Path, n: int = 30000, *, seed: int = 0
) -> list[CocoCaption]:
    """One caption per image (the first annotation, by annotation id), for ``n`` images drawn
    at random (``seed``) from those with a caption, returned in image-id order; all of them
    when there are at most ``n``.

    Args:
        captions_json: COCO ``captions_val2014.json``: ``{"images": [{"id", "file_name"}],
            "annotations": [{"id", "image_id", "caption"}]}``.
        images: Folder of the validation images.
        n: Captions at most (the paper: 30,000).
        seed: Seed of the sample.

    Raises:
        FileNotFoundError: the JSON file, the folder, or a selected image is missing.
        ValueError: the JSON is not in COCO's captions format, or ``n`` < 2.
    """
    if n < 2:
        raise ValueError(f"-n/--num-captions must be >= 2 (FID needs two images), got {n}")
    captions_json, images = Path(captions_json), Path(images)
    if not captions_json.is_file():
        raise FileNotFoundError(f"--captions {captions_json} not found")
    if not images.is_dir():
        raise FileNotFoundError(f"--images {images} is not a folder")
    try:
        data = json.loads(captions_json.read_text(encoding="utf-8"))
        files = {int(im["id"]): str(im["file_name"]) for im in data["images"]}
        notes = sorted(data["annotations"], key=lambda a: (int(a["image_id"]), a.get("id", 0)))
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(
            f"--captions {captions_json} is not a COCO captions file ({type(err).__name__}: "
            f"{err}); expected images[].id/file_name and annotations[].image_id/caption"
        ) from None
    first: dict[int, str] = {}
    for note in notes:
        image_id = int(note["image_id"])
        text = " ".join(str(note["caption"]).split())
        if image_id in files and text and image_id not in first:
            first[image_id] = text
    ids = sorted(first)
    if len(ids) > n:
        ids = sorted(random.Random(seed).sample(ids, n))
    chosen = [CocoCaption(i, files[i], first[i]) for i in ids]
    missing = [c.file_name for c in chosen if not (images / c.file_name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"--images {images} lacks {len(missing)} of the {len(chosen)} selected images, "
            f"e.g. {missing[0]}"
        )
    if len(chosen) < 2:
        raise ValueError(f"--captions {captions_json}: fewer than 2 captioned images")
    return chosen


def prepare_image(path_or_image: Any, size: int, radius: float) -> Tensor:
    """(3, size, size) uint8: centre-cropped to a square, resized (bicubic), blurred.

    Args:
        path_or_image: An image file or a PIL image.
        size: Side in px (the paper: 256).
        radius: Gaussian blur radius in px (0: none).
    """
    from PIL import Image, ImageFilter, ImageOps

    if isinstance(path_or_image, Image.Image):
        image = path_or_image.convert("RGB")
    else:
        with Image.open(path_or_image) as im:
            image = im.convert("RGB")
    image = ImageOps.fit(image, (size, size), Image.Resampling.BICUBIC)
    if radius > 0:
        image = image.filter(ImageFilter.GaussianBlur(radius))
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)


def _inception_module() -> Any:
    """torch-fidelity's ``feature_extractor_inceptionv3`` module.

    Imported without running ``torch_fidelity/__init__.py``: the package's initialiser imports
    torchvision (for its CLIP, VGG and DINOv2 extractors and its datasets, none used here), and
    a torchvision built for another torch (PyPI's CUDA torchvision beside a CPU torch) fails to
    import ("operator torchvision::nms does not exist"). The Inception module needs only torch.
    """
    name = "torch_fidelity.feature_extractor_inceptionv3"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec("torch_fidelity")
    if spec is None:
        raise ValueError(
            "the COCO evaluation needs torch-fidelity: pip install 'cogview2[coco]' "
            "(or pip install --no-deps torch-fidelity)"
        )
    if "torch_fidelity" in sys.modules:
        return importlib.import_module(name)
    package = importlib.util.module_from_spec(spec)  # the package, its __init__ not run
    sys.modules["torch_fidelity"] = package
    try:
        return importlib.import_module(name)
    finally:
        del sys.modules["torch_fidelity"]  # a later `import torch_fidelity` runs it whole


def load_inception(weights: Path, device: str | torch.device = "cpu") -> torch.nn.Module:
    """torch-fidelity's FID InceptionV3 from a local state-dict file, in eval mode.

    Args:
        weights: ``weights-inception-2015-12-05-6726825d.pth`` (torch-fidelity's release; the
            same tensors as pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth``), or any
            state dict of that architecture.
        device: Where it runs.

    Raises:
        FileNotFoundError: no such file.
        ValueError: torch-fidelity is not installed, or the file is not a plain state dict of
            that architecture.
    """
    weights = Path(weights)
    if not weights.is_file():
        raise FileNotFoundError(f"--inception {weights} not found (nothing is downloaded)")
    try:  # a plain tensor pickle: checked before torch-fidelity unpickles it without limits
        torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"--inception {weights} is not a state-dict file ({err})") from None
    module = _inception_module()
    try:
        model = module.FeatureExtractorInceptionV3(
            "inception-v3-compat",
            ["2048", "logits_unbiased"],
            feature_extractor_weights_path=str(weights),
        )
    except RuntimeError as err:  # load_state_dict: missing / unexpected keys, shapes
        first = str(err).splitlines()[0]
        raise ValueError(f"--inception {weights}: not InceptionV3 FID weights ({first})") from None
    return model.to(device).eval()


@torch.no_grad()
def inception_features(model: torch.nn.Module, images: Tensor) -> tuple[Tensor, Tensor]:
    """``(pool, logits)`` of a batch: (B, 2048) and (B, 1008) float32 on the CPU.

    Args:
        model: `load_inception`'s model.
        images: (B, 3, H, W) uint8 (resized to 299 px inside, as TensorFlow did).
    """
    device = next(model.parameters()).device
    pool, logits = model(images.to(device))
    return pool.float().cpu(), logits.float().cpu()


class FeatureMoments:
    """Running mean and covariance of feature rows (float64), so that 30,000 × 2048 features
    need not be kept: ``add`` batches, then ``mean`` and ``cov`` (as ``np.cov``, N - 1).

    While there are at most ``dim`` rows they are kept too (``rows``): `frechet_from_moments`
    then takes the exact low-rank route (seconds saved on small runs such as the tests).
    """

    def __init__(self, dim: int) -> None:
        self.n = 0
        self.sum = np.zeros(dim)
        self.outer = np.zeros((dim, dim))
        self.rows: list[np.ndarray] | None = []

    def add(self, features: Tensor) -> None:
        """Add (B, dim) rows."""
        x = features.double().numpy()
        self.n += len(x)
        self.sum += x.sum(0)
        self.outer += x.T @ x
        if self.rows is not None:
            self.rows.append(x)
            if self.n > len(self.sum):
                self.rows = None

    @property
    def mean(self) -> np.ndarray:
        return self.sum / self.n

    @property
    def cov(self) -> np.ndarray:
        mu = self.mean
        return (self.outer - self.n * np.outer(mu, mu)) / (self.n - 1)


def frechet_from_moments(a: FeatureMoments, b: FeatureMoments) -> float:
    """FID of two feature sets, as torch-fidelity's ``fid_statistics_to_metric``:
    ``|μa − μb|² + tr Σa + tr Σb − 2 Σ Re √eig(Σa Σb)``.

    With few rows (both sides kept theirs) the last sum is taken exactly in the rows' space:
    with centred rows ``Xa``, ``Xb``, the non-zero eigenvalues of ``Σa Σb`` are the squared
    singular values of ``Xa Xbᵀ / √((na − 1)(nb − 1))``.

    Raises:
        ValueError: a side has fewer than 2 rows.
    """
    if min(a.n, b.n) < 2:
        raise ValueError(f"FID needs at least 2 images a side, got {a.n} and {b.n}")
    diff = a.mean - b.mean
    if a.rows is not None and b.rows is not None:
        xa, xb = np.concatenate(a.rows) - a.mean, np.concatenate(b.rows) - b.mean
        scale = np.sqrt((a.n - 1) * (b.n - 1))
        root = np.linalg.svd(xa @ xb.T, compute_uv=False).sum() / scale
        traces = (xa * xa).sum() / (a.n - 1) + (xb * xb).sum() / (b.n - 1)
    else:
        sa, sb = a.cov, b.cov
        root = np.sqrt(np.linalg.eigvals(sa @ sb).astype(np.complex128)).real.sum()
        traces = np.trace(sa) + np.trace(sb)
    return float(diff @ diff + traces - 2 * root)


def inception_score(logits: Tensor, splits: int = 10, seed: int = 2020) -> tuple[float, float]:
    """(mean, std) of the Inception Score over ``splits`` parts, as torch-fidelity's
    ``isc_features_to_metric`` (rows shuffled with ``seed`` first).

    Args:
        logits: (N, C) unbiased logits.
        splits: Parts (at most N).
    """
    n = len(logits)
    splits = max(1, min(splits, n))
    x = logits[np.random.RandomState(seed).permutation(n)].double()
    p, log_p = x.softmax(1), x.log_softmax(1)
    scores = []
    for i in range(splits):
        part, log_part = (
            p[i * n // splits : (i + 1) * n // splits],
            log_p[i * n // splits : (i + 1) * n // splits],
        )
        q = part.mean(0, keepdim=True)
        scores.append((part * (log_part - q.log())).sum(1).mean().exp().item())
    return float(np.mean(scores)), float(np.std(scores))


@dataclass(frozen=True)
class CocoResults:
    """Table 1's numbers.

    Attributes:
        fid: Blur radius → FID.
        inception_score: IS of the generated images (mean over 10 splits).
        inception_score_std: Its standard deviation over the splits.
        num_captions: Captions (= generated images = real images).
        samples_per_caption: Samples of which the best by caption score was kept.
        size: Pixel side both sides were resized to.
    """

    fid: dict[int, float]
    inception_score: float
    inception_score_std: float
    num_captions: int
    samples_per_caption: int
    size: int

    def to_json(self) -> dict[str, Any]:
        """JSON-ready (the radii as strings)."""
        d = asdict(self)
        d["fid"] = {str(k): v for k, v in self.fid.items()}
        return d


def measure(
    model: torch.nn.Module,
    real: Sequence[Path],
    generated: Sequence[Path],
    *,
    size: int = 256,
    radii: Iterable[int] = BLUR_RADII,
    batch_size: int = 32,
    samples_per_caption: int = 16,
    progress: bool = False,
) -> CocoResults:
    """FID-k of ``generated`` against ``real`` for each radius, and IS of ``generated``.

    Args:
        model: `load_inception`'s model.
        real: Real image files.
        generated: Generated image files.
        size: Side both are resized to.
        radii: Blur radii (0 = none).
        batch_size: Images per Inception forward.
        samples_per_caption: Recorded in the result.
        progress: A progress bar over the batches.
    """
    from tqdm.auto import tqdm

    radii = tuple(radii)
    moments = {(side, k): FeatureMoments(2048) for side in ("real", "gen") for k in radii}
    logits: list[Tensor] = []
    work = [("real", real[i : i + batch_size]) for i in range(0, len(real), batch_size)]
    work += [("gen", generated[i : i + batch_size]) for i in range(0, len(generated), batch_size)]
    for side, paths in tqdm(work, desc="Inception", disable=not progress):
        for k in radii:
            batch = torch.stack([prepare_image(p, size, k) for p in paths])
            pool, logit = inception_features(model, batch)
            moments[(side, k)].add(pool)
            if side == "gen" and k == 0:
                logits.append(logit)
    if not logits:  # IS is measured on the unblurred samples
        for i in range(0, len(generated), batch_size):
            batch = torch.stack([prepare_image(p, size, 0) for p in generated[i : i + batch_size]])
            logits.append(inception_features(model, batch)[1])
    mean, std = inception_score(torch.cat(logits))
    fid = {k: frechet_from_moments(moments[("real", k)], moments[("gen", k)]) for k in radii}
    return CocoResults(fid, mean, std, len(generated), samples_per_caption, size)


def coco_table(results: CocoResults, name: str = "this run") -> str:
    """The markdown table of the paper's Table 1 (FID-0 … FID-8, IS) with one row."""
    radii = sorted(results.fid)
    head = "| Model | " + " | ".join(f"FID-{k}" for k in radii) + " | IS |"
    rule = "|---|" + "---|" * (len(radii) + 1)
    row = f"| {name} | " + " | ".join(f"{results.fid[k]:.1f}" for k in radii)
    return f"{head}\n{rule}\n{row} | {results.inception_score:.1f} |\n"
