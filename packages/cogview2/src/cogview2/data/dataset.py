"""Read a built emoji data set: a torch ``Dataset``, shard verification and PNG export."""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from coglm_core import atomic_write_text

from .captions import DEFAULT_TEMPLATE, make_caption
from .shards import FORMAT_VERSION, read_member, sha256_file
from .split import SPLITS

__all__ = ["EmojiDataset", "export_png_folder", "load_manifest", "select_records", "verify_shards"]

_ITEM_FIELDS = ("key", "style", "code", "emoji", "name_en", "name_zh", "group", "subgroup")
_ID_FIELDS = ("group_id", "subgroup_id")


def load_manifest(root: str | Path) -> dict[str, Any]:
    """The ``manifest.json`` of a built data set.

    Raises:
        FileNotFoundError: ``root`` holds no manifest.
        ValueError: the manifest's format version is not the one this code reads.
    """
    path = Path(root) / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; build one with `cogview2 data emoji --out DIR`")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path}: format_version {manifest.get('format_version')} but this cogview2 "
            f"reads {FORMAT_VERSION}; rebuild the data set"
        )
    return manifest


def verify_shards(root: str | Path) -> None:
    """Check every shard's sha256 against the manifest.

    Raises:
        ValueError: a shard is missing or its digest differs (names the shard).
    """
    root = Path(root)
    for split in load_manifest(root)["splits"].values():
        for shard in split["shards"]:
            path = root / shard["file"]
            if not path.is_file():
                raise ValueError(f"shard {path} is missing")
            if sha256_file(path) != shard["sha256"]:
                raise ValueError(f"shard {path} does not match its sha256 in manifest.json")


def select_records(
    records: Sequence[dict[str, Any]],
    indices: Iterable[int],
    chosen: Mapping[str, Sequence[str]],
    *,
    error: str,
) -> list[int]:
    """The ``indices`` whose record's ``key`` field is in ``chosen[key]`` for every non-empty
    ``chosen[key]`` (e.g. ``{"style": ("twemoji",), "group": ()}``: twemoji, any group).

    Raises:
        ValueError: a chosen value that no record has; the message is
            ``error.format(key=key, unknown=[...], present=[...])``.
    """
    keep = list(indices)
    for key, values in chosen.items():
        if not values:
            continue
        present = {r[key] for r in records}
        unknown = sorted(set(values) - present)
        if unknown:
            raise ValueError(error.format(key=key, unknown=unknown, present=sorted(present)))
        keep = [i for i in keep if records[i][key] in values]
    return keep


class EmojiDataset(Dataset):
    """One split of a built emoji data set at one render size, as a torch ``Dataset``.

    Items come in a fixed order (the ``<split>.jsonl`` order: by style, then Unicode order).
    Each item is a dict that the default ``DataLoader`` collate can batch::

        {"image": uint8 tensor (3, size, size) or PIL.Image, "caption_en": str,
         "caption_zh": str, "key": str, "style": str, "code": str, "emoji": str,
         "name_en": str, "name_zh": str, "group": str, "subgroup": str,
         "group_id": int, "subgroup_id": int, "index": int}

    The full record (keywords and all) of item ``i`` is ``dataset.records[i]``.

    Args:
        root: the data set directory (``cogview2 data emoji --out``).
        split: ``"train"`` or ``"heldout"``.
        size: a render size the data set holds (see ``manifest["sizes"]``).
        styles: keep only these styles (None: all).
        image_format: ``"tensor"`` (uint8, CHW) or ``"pil"`` (RGB ``PIL.Image``).
        caption_template: a key of :data:`cogview2.data.CAPTION_TEMPLATES`.

    Raises:
        ValueError: unknown split, size, style, image format or template.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        size: int = 160,
        *,
        styles: list[str] | tuple[str, ...] | None = None,
        image_format: Literal["tensor", "pil"] = "tensor",
        caption_template: str = DEFAULT_TEMPLATE,
    ) -> None:
        self.root = Path(root)
        self.manifest = load_manifest(self.root)
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if size not in self.manifest["sizes"]:
            raise ValueError(f"size {size} not in this data set; it holds {self.manifest['sizes']}")
        if image_format not in ("tensor", "pil"):
            raise ValueError(f"image_format must be 'tensor' or 'pil', got {image_format!r}")
        unknown = sorted(set(styles or ()) - set(self.manifest["styles"]))
        if unknown:
            raise ValueError(
                f"styles {unknown} not in this data set: {list(self.manifest['styles'])}"
            )
        make_caption({"name_en": "", "keywords_en": [], "style": ""}, "en", caption_template)
        self.split, self.size, self.image_format = split, size, image_format
        self.caption_template = caption_template
        path = self.root / self.manifest["splits"][split]["records"]
        with open(path, encoding="utf-8") as f:
            records = [json.loads(line) for line in f if line.strip()]
        self.records = [r for r in records if styles is None or r["style"] in styles]

    def __len__(self) -> int:
        return len(self.records)

    def image_bytes(self, index: int) -> bytes:
        """The stored PNG bytes of item ``index`` at this dataset's size."""
        record = self.records[index]
        offset, length = record["images"][str(self.size)]
        return read_member(self.root / record["shard"], offset, length)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        index %= len(self)
        record = self.records[index]
        pil = Image.open(io.BytesIO(self.image_bytes(index))).convert("RGB")
        image: Any = pil
        if self.image_format == "tensor":
            image = torch.from_numpy(np.asarray(pil).copy()).permute(
                2, 0, 1
            )  # (H, W, 3) -> (3, H, W)
        item: dict[str, Any] = {"image": image, "index": index}
        for lang in ("en", "zh"):
            item[f"caption_{lang}"] = make_caption(record, lang, self.caption_template)  # type: ignore[arg-type]
        item.update({k: record[k] for k in _ITEM_FIELDS})
        item.update({k: int(record[k]) for k in _ID_FIELDS})
        return item


def export_png_folder(
    root: str | Path,
    out: str | Path,
    *,
    split: str = "train",
    size: int = 160,
    caption_template: str = DEFAULT_TEMPLATE,
) -> Path:
    """Export one split at one size as plain files, for tools that take a folder of PNGs.

    Writes ``out/images/<style>_<code>.png``, ``out/captions.txt`` (every English and every
    Chinese caption, one per line: the text a tokenizer trains on) and ``out/metadata.jsonl``
    (``{"file", "caption_en", "caption_zh", "style", "code", "group", "subgroup"}`` per image).

    Returns:
        ``out``.
    """
    dataset = EmojiDataset(root, split, size, image_format="pil", caption_template=caption_template)
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    captions: list[str] = []
    rows: list[str] = []
    for i, record in enumerate(dataset.records):
        name = f"{record['style']}_{record['code']}.png"
        tmp = out / "images" / f".tmp-{name}"
        tmp.write_bytes(dataset.image_bytes(i))
        tmp.replace(out / "images" / name)
        en, zh = (make_caption(record, lang, caption_template) for lang in ("en", "zh"))
        captions += [en, zh]
        row = {"file": f"images/{name}", "caption_en": en, "caption_zh": zh}
        row.update({k: record[k] for k in ("style", "code", "group", "subgroup")})
        rows.append(json.dumps(row, ensure_ascii=False))
    atomic_write_text(out / "captions.txt", "\n".join(captions) + "\n")
    atomic_write_text(out / "metadata.jsonl", "\n".join(rows) + "\n")
    return out
