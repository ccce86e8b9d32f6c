"""Command line: ``icetk encode | decode | train-text | train-image | info``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from icetk.checkpoint import atomic_write, atomic_write_bytes, save_vqvae
from icetk.data import ImageFiles, collect_image_paths
from icetk.layout import VocabularyLayout
from icetk.tokenizer import CONFIG_FILE, IMAGE_FILE, TEXT_FILE, IceTokenizer, update_config
from icetk.train_image import ImageTrainConfig, train_vqvae
from icetk.train_text import TextTrainConfig, train_text_tokenizer
from icetk.vqvae import HVQVAE, VQVAEConfig

#: Checkpoint file ``train-image`` resumes from, inside the output folder.
TRAIN_STATE_FILE = "train_image_state.pt"
_PRESETS = {"official": VQVAEConfig.official, "small": VQVAEConfig.small, "tiny": VQVAEConfig.tiny}


def _save_npy(path: str, array: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.save(f, array, allow_pickle=False)


def _cmd_info(args: argparse.Namespace) -> int:
    tok = IceTokenizer.from_pretrained(args.tokenizer)
    lay = tok.layout
    params = sum(p.numel() for p in tok.image.model.parameters())
    info = {
        "vocab_size": lay.vocab_size,
        "num_image_tokens": lay.num_image_tokens,
        "text_ids": [lay.text_offset, lay.text_stop],
        "class_ranges": {k: [r.start, r.stop] for k, r in lay.class_ranges.items()},
        "special_tokens": lay.special_token_ids,
        "pad_id": lay.pad_id,
        "vqvae_parameters": params,
        "compressions": list(tok.image.config.compressions),
        "vqvae": tok.image.config.to_dict(),
    }
    print(json.dumps(info, indent=2, ensure_ascii=False))
    return 0


def _cmd_encode(args: argparse.Namespace) -> int:
    tok = IceTokenizer.from_pretrained(args.tokenizer)
    if args.text is not None:
        print(json.dumps(tok.encode_text(args.text, language_tag=args.language_tag)))
        return 0
    if not args.images:
        raise SystemExit("icetk encode: give image paths or --text")
    ids = tok.encode_image(
        [Path(p) for p in args.images], image_size=args.image_size, compression=args.compression
    )
    if args.output:
        atomic_write(args.output, lambda tmp: _save_npy(tmp, ids.numpy()))
    else:
        print(json.dumps(ids.tolist()))
    return 0


def _cmd_decode(args: argparse.Namespace) -> int:
    tok = IceTokenizer.from_pretrained(args.tokenizer)
    if args.text_ids is not None:
        print(tok.decode_text(int(i) for i in args.text_ids.split(",") if i.strip()))
        return 0
    if args.ids is None or args.output_dir is None:
        raise SystemExit("icetk decode: give --ids FILE.npy and --output-dir, or --text-ids")
    ids = torch.from_numpy(np.load(args.ids, allow_pickle=False))
    images = tok.decode_image(ids, compression=args.compression, output="pil")
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    for i, im in enumerate(images):
        atomic_write(out / f"{i:05d}.png", lambda tmp, im=im: im.save(tmp, format="PNG"))
    print(f"wrote {len(images)} images to {out}")
    return 0


def _cmd_train_text(args: argparse.Namespace) -> int:
    out = Path(args.output)
    config = TextTrainConfig(
        vocab_size=args.vocab_size,
        hard_vocab_limit=args.hard_vocab_limit,
        normalization_rule_name=args.normalization,
    )
    model, layout = train_text_tokenizer(
        args.input, num_image_tokens=args.num_image_tokens, config=config
    )
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / TEXT_FILE, model)
    update_config(out / CONFIG_FILE, layout=layout)
    ranges = {k: [r.start, r.stop] for k, r in layout.class_ranges.items()}
    print(json.dumps({"pieces": layout.num_text_tokens, "class_ranges": ranges}))
    return 0


def _cmd_train_image(args: argparse.Namespace) -> int:
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    num_codes = args.num_codes
    cfg_path = out / CONFIG_FILE
    if cfg_path.is_file():
        saved = json.loads(cfg_path.read_text(encoding="utf-8"))
        if "layout" in saved:
            wanted = VocabularyLayout.from_dict(saved["layout"]).num_image_tokens
            if num_codes is not None and num_codes != wanted:
                raise SystemExit(f"--num-codes {num_codes} != {wanted} image tokens in {cfg_path}")
            num_codes = wanted
    preset = _PRESETS[args.preset]
    vq_cfg = (
        preset()
        if num_codes is None
        else VQVAEConfig.from_dict({**preset().to_dict(), "num_codes": num_codes})
    )
    config = ImageTrainConfig(
        compressions=tuple(args.compressions),
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        checkpoint_every=args.checkpoint_every,
        log_every=args.log_every,
        perceptual_weight=args.perceptual_weight if args.perceptual_weights else 0.0,
        perceptual_weights=args.perceptual_weights,
        bf16=args.bf16,
        seed=args.seed,
    )
    dataset = ImageFiles(collect_image_paths(args.sources), args.image_size)
    model = HVQVAE(vq_cfg)
    metrics = train_vqvae(
        model,
        dataset,
        config,
        out / TRAIN_STATE_FILE,
        device=args.device,
        log_file=out / "train_image_log.jsonl",
    )
    save_vqvae(model.cpu(), out / IMAGE_FILE)
    update_config(cfg_path, vqvae=vq_cfg)
    print(json.dumps(metrics))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``icetk`` command."""
    parser = argparse.ArgumentParser(prog="icetk", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("info", help="print the layout and model sizes of a tokenizer folder")
    p.add_argument("tokenizer", help="folder with our format or the official pair")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("encode", help="images → ids (.npy or JSON), or --text → ids (JSON)")
    p.add_argument("--tokenizer", required=True)
    p.add_argument("images", nargs="*", help="image files")
    p.add_argument("--text", help="encode this text instead of images")
    p.add_argument("--language-tag", choices=["english", "chinese"])
    p.add_argument("--image-size", type=int, help="resize shorter side + centre crop")
    p.add_argument("--compression", type=int, default=8)
    p.add_argument("--output", help=".npy file for the (B, h, w) ids; JSON on stdout otherwise")
    p.set_defaults(func=_cmd_encode)

    p = sub.add_parser("decode", help="ids (.npy) → PNG files, or --text-ids → text")
    p.add_argument("--tokenizer", required=True)
    p.add_argument("--ids", help=".npy file of (B, h, w) or (B, N) image ids")
    p.add_argument("--output-dir")
    p.add_argument("--compression", type=int, default=8)
    p.add_argument("--text-ids", help="comma-separated global text ids")
    p.set_defaults(func=_cmd_decode)

    p = sub.add_parser("train-text", help="train a bilingual sentencepiece model into a folder")
    p.add_argument("input", help="UTF-8 text file, one sentence per line")
    p.add_argument("--output", required=True, help="tokenizer folder")
    p.add_argument("--vocab-size", type=int, default=8000)
    p.add_argument("--num-image-tokens", type=int, required=True)
    p.add_argument(
        "--hard-vocab-limit",
        action="store_true",
        help="fail instead of shrinking the vocab on small corpora",
    )
    p.add_argument("--normalization", default="identity", help="sentencepiece normalization rule")
    p.set_defaults(func=_cmd_train_text)

    p = sub.add_parser("train-image", help="train (or resume) the VQ-VAE into a folder")
    p.add_argument("sources", nargs="+", help="folders of PNGs and/or list files")
    p.add_argument("--output", required=True, help="tokenizer folder (checkpoint + weights)")
    p.add_argument("--preset", choices=sorted(_PRESETS), default="small")
    p.add_argument(
        "--num-codes", type=int, help="codebook size (default: the layout's or preset's)"
    )
    p.add_argument("--image-size", type=int, default=160)
    p.add_argument("--compressions", type=int, nargs="+", default=[8])
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--checkpoint-every", type=int, default=200)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--perceptual-weights", help="VGG16 state dict file (.pt / .safetensors)")
    p.add_argument("--perceptual-weight", type=float, default=0.1)
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (quantizer stays fp32)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_train_image)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``icetk`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError) as err:
        print(f"icetk {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
