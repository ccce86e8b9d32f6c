"""Training memory per GPU of the ``coglm``, ``dsr`` and ``itersr`` recipes: DDP vs FSDP2.

    python packages/cogview2/bench/train_memory.py                      # markdown tables
    python packages/cogview2/bench/train_memory.py --presets 6b --gpus 1 8 64 --json

Computed, not measured: the models of each preset (`cogview2.models.presets`) are built on
the meta device and their parameters counted, split into trainable and frozen (DSR trains
``attention_plus`` and its position table on a frozen CogLM; CogLM and ITERSR train every
weight) and into FSDP2 units as the recipes shard them (one unit per transformer layer, plus
one per DSR ``attention_plus`` projection; the root unit keeps the rest: the tied
embedding/head, positions, final LayerNorm, ITERSR's position table). Bytes per GPU:

* model states, plain (1 GPU): fp32 weights 4·P, fp32 gradients 4·T, AdamW exp_avg and
  exp_avg_sq 8·T (P parameters, T trainable).
* DDP (N GPUs): the same, plus DDP's gradient buckets 4·T (``gradient_as_bucket_view=False``,
  the default the recipes use): nothing shrinks with N.
* FSDP2 (N GPUs): (4·P + 4·T + 8·T) / N sharded, plus the unsharded working set: the root unit
  (all-gathered at the start of the forward and kept until its gradients are reduced at the
  end of the backward) and two layer units (the one computing and the one prefetched), each
  with its parameters and, if trainable, its unsharded gradients, in the parameter dtype
  (4 bytes fp32; 2 with ``fsdp_mixed_precision`` bf16).

Activations are a separate, stated estimate (Korthikanti et al. 2022, "Reducing Activation
Recomputation in Large Transformer Models", eq. 2, no recomputation): per layer and token
34·H bytes with 16-bit activations and dropout, plus 5·a·s bytes of attention scores for a
query attending to s keys (a heads); the recipes' fp32 runs roughly double the first term.
The tied head adds, per counted token, 4·V bytes of fp32 logits and 4·V of their gradient.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import torch
from torch import nn

from cogview2.models.presets import PRESETS, build_models

GIB = 2**30


def _numel(params: list[nn.Parameter]) -> int:
    return sum(p.numel() for p in params)


def model_units(preset: str) -> dict[str, dict[str, Any]]:
    """Per recipe model: parameter counts (total, trainable) and FSDP2 units."""
    models = build_models(preset)
    out: dict[str, dict[str, Any]] = {}
    for name, model in models.items():
        if name == "dsr":
            model.base.requires_grad_(False)  # the recipe's default (train_base = false)
        base = model if name == "coglm" else model.base
        units: list[nn.Module] = list(base.transformer.layers)
        if name == "dsr":
            plus = model.mixins["attention_plus"]
            units += [*plus.query_key_value, *plus.dense]
        in_units = {id(p) for u in units for p in u.parameters()}
        params = list(model.parameters())
        root = [p for p in params if id(p) not in in_units]
        unit_sizes = [
            (_numel(list(u.parameters())), _numel([p for p in u.parameters() if p.requires_grad]))
            for u in units
        ]
        # the two largest consecutive units of one kind: a layer (plus its DSR projections)
        layer = max(unit_sizes)
        out[name] = {
            "params": _numel(params),
            "trainable": _numel([p for p in params if p.requires_grad]),
            "root": _numel(root),
            "root_trainable": _numel([p for p in root if p.requires_grad]),
            "unit": layer[0],
            "unit_trainable": layer[1],
            "hidden": base.config.hidden_size,
            "layers": base.config.num_layers,
            "heads": base.config.num_attention_heads,
            "vocab": base.config.vocab_size,
            "sequence_length": base.config.sequence_length,
        }
    return out


def per_gpu_bytes(m: dict[str, Any], mode: str, gpus: int, param_bytes: int = 4) -> float:
    """Model-state bytes per GPU (see the module docstring for the formula)."""
    p, t = m["params"], m["trainable"]
    states = 4 * p + 4 * t + 8 * t
    if mode == "plain" or (mode == "ddp" and gpus == 1):
        return states
    if mode == "ddp":
        return states + 4 * t
    if mode != "fsdp":
        raise ValueError(f"mode {mode!r}; allowed: 'plain', 'ddp', 'fsdp'")
    working = (m["root"] + m["root_trainable"]) * param_bytes
    working += 2 * (m["unit"] + m["unit_trainable"]) * param_bytes
    return states / gpus + working


def activations_per_sample(m: dict[str, Any], bytes_16bit: bool = True) -> float:
    """CogLM pretraining sample (full attention over ``sequence_length``), bytes."""
    s, h, a, L, v = m["sequence_length"], m["hidden"], m["heads"], m["layers"], m["vocab"]
    per_layer = s * h * 34 * (1 if bytes_16bit else 2) + 5 * a * s * s
    return L * per_layer + s * v * 8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    parser.add_argument("--gpus", nargs="+", type=int, default=[1, 8, 64])
    parser.add_argument("--json", action="store_true", help="one JSON line per row")
    args = parser.parse_args()
    torch.set_num_threads(1)
    gpus = [g for g in args.gpus if g > 1]
    head = ["preset", "model", "params (trainable)", "1 GPU"]
    head += [f"DDP ×{g}" for g in gpus]
    head += [f"FSDP2 ×{g} fp32 / bf16" for g in gpus]
    if not args.json:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
    for preset in args.presets:
        for name, m in model_units(preset).items():
            row: dict[str, Any] = {"preset": preset, "model": name, **m}
            row["plain_gib"] = per_gpu_bytes(m, "plain", 1) / GIB
            for g in gpus:
                row[f"ddp_{g}_gib"] = per_gpu_bytes(m, "ddp", g) / GIB
                row[f"fsdp_{g}_gib"] = per_gpu_bytes(m, "fsdp", g) / GIB
                row[f"fsdp_{g}_bf16_gib"] = per_gpu_bytes(m, "fsdp", g, param_bytes=2) / GIB
            if name == "coglm":
                row["activations_per_sample_gib_bf16"] = activations_per_sample(m) / GIB
            if args.json:
                print(json.dumps(row))
                continue
            cells = [
                preset,
                name,
                f"{m['params'] / 1e9:.3f} B ({m['trainable'] / 1e9:.3f} B)",
                f"{row['plain_gib']:.1f}",
            ]
            cells += [f"{row[f'ddp_{g}_gib']:.1f}" for g in gpus]
            cells += [f"{row[f'fsdp_{g}_gib']:.1f} / {row[f'fsdp_{g}_bf16_gib']:.1f}" for g in gpus]
            print("| " + " | ".join(cells) + " |")
    if not args.json:
        print()
        print(
            "| preset | root unit (params) | largest unit (params) | CogLM activations per "
            "512-token sample, bf16 (GiB) |"
        )
        print("|---|---|---|---|")
        for preset in args.presets:
            m = model_units(preset)["coglm"]
            print(
                f"| {preset} | {m['root'] / 1e6:.1f} M | {m['unit'] / 1e6:.1f} M | "
                f"{activations_per_sample(m) / GIB:.2f} |"
            )


if __name__ == "__main__":
    main()
