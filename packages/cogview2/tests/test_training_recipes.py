"""Every training recipe for a few steps on a tiny data set built from the fixture SVGs."""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from coglm_core.distributed import read_sharded_model
from cogview2 import CogView2Pipeline
from cogview2.data import BuildConfig, EmojiDataset, build_emoji_dataset
from cogview2.layout import layout_pad_id
from cogview2.training import (
    RECIPE_NAMES,
    add_train_commands,
    load_training_config,
    run_recipe,
)
from cogview2.training.super_resolution import dsr_recipe, sr_samples
from cogview2.training.tokenize_data import (
    coglm_sample,
    ensure_coglm_samples,
    high_subset,
    load_token_split,
    training_rows,
)
from cogview2.training.tokenizers import load_trained_tokenizer

PACKAGE = Path(__file__).parents[1]
TINY_DATA = BuildConfig(
    styles=("twemoji", "openmoji"),
    sizes=(32, 96),
    heldout_fraction=0.3,
    seed=0,  # 👋 and its skin-tone variant 👋🏻 are training concepts
    samples_per_shard=4,
    progress=False,
)


def tiny_config(tmp: Path, data: Path):
    cfg = load_training_config(PACKAGE / "configs" / "tiny-test.toml")
    return dataclasses.replace(
        cfg,
        workdir=str(tmp / "run"),
        data=dataclasses.replace(cfg.data, root=str(data)),
        assemble=dataclasses.replace(cfg.assemble, out=str(tmp / "weights")),
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory, emoji_roots):
    tmp = tmp_path_factory.mktemp("train")
    build_emoji_dataset(emoji_roots, tmp / "data", TINY_DATA)
    cfg = tiny_config(tmp, tmp / "data")
    weights = run_recipe("all", cfg, progress=False)
    return cfg, weights


def test_all_recipes_write_their_outputs(trained):
    cfg, weights = trained
    dirs = cfg.stage_dirs
    assert (dirs["text_tokenizer"] / "text.model").is_file()
    vq_log = [json.loads(x) for x in (dirs["vqvae"] / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in vq_log] == [1, 2]
    tensors, texts = load_token_split(dirs["tokenize"], "train")
    n = len(texts)
    m = min(n, cfg.tokenize.high_images)
    assert tensors["low"].shape == (n, 16) and tensors["high"].shape == (m, 144)
    assert tensors["high_index"].tolist() == sorted(set(tensors["high_index"].tolist()))
    assert m < n and int(tensors["high_index"].max()) < n  # the fixture subsets the high renders
    assert int(tensors["low"].max()) < cfg.vqvae.num_codes and int(tensors["low"].min()) >= 0
    labels = np.load(dirs["tokenize"] / "cluster_labels.npy")
    assert labels.shape == (cfg.vqvae.num_codes,) and labels.max() < cfg.tokenize.num_clusters
    samples = np.fromfile(dirs["tokenize"] / "coglm-train.bin", dtype="<i4")
    assert samples.size == n * len(cfg.data.caption_templates) * (cfg.tokenize.text_slots + 1 + 16)
    for stage, cfg_stage in (("coglm", cfg.coglm), ("dsr", cfg.dsr), ("itersr", cfg.itersr)):
        log = [json.loads(x) for x in (dirs[stage] / "log.jsonl").read_text().splitlines()]
        assert log[-1]["step"] == cfg_stage.steps and all(np.isfinite(r["loss"]) for r in log)
    assert weights == Path(cfg.assemble.out)


def test_assembled_weights_are_fp16_and_generate(trained):
    _, weights = trained
    for path in weights.rglob("*.safetensors"):
        with safe_open(path, "pt") as f:
            dtypes = {f.get_tensor(k).dtype for k in f.keys()}  # noqa: SIM118 (safe_open is not iterable)
        assert dtypes <= {torch.float16, torch.int64, torch.int32}, (path, dtypes)
    manifest = json.loads((weights / "pipeline.json").read_text())
    assert manifest["dsr"]["shares_base"] == "coglm" and manifest["itersr"]["shares_base"] is None
    assert manifest["config"]["guidance_scale"] == 2.0  # [assemble] guidance_scale
    pipe = CogView2Pipeline.from_pretrained(weights, dtype=torch.float32)
    assert pipe.config.guidance_scale == 2.0
    out = pipe(
        "red apple",
        style="none",
        generator=torch.Generator().manual_seed(0),
        progress=False,
        score=False,
    )
    assert out.images[0].size == (96, 96) and out.tokens.shape == (1, 12, 12)


def test_high_subset_is_seeded_sorted_and_bounded():
    assert high_subset(5, 0, seed=1) == [0, 1, 2, 3, 4] == high_subset(5, 9, seed=1)
    a = high_subset(100, 10, seed=1)
    assert a == sorted(set(a)) and len(a) == 10 and max(a) < 100
    assert a == high_subset(100, 10, seed=1) != high_subset(100, 10, seed=2)


def test_coglm_sample_layout():
    low = torch.arange(4)
    s = coglm_sample([10, 11], [20], low, text_slots=6, pad_id=3)
    assert s.tolist() == [10, 11, 3, 20, 3, 3, 3, 0, 1, 2, 3]
    s = coglm_sample([10, 11, 12, 13], [20, 21], low, text_slots=5, pad_id=3)
    assert s.tolist() == [10, 11, 12, 13, 3, 3, 0, 1, 2, 3]  # Chinese dropped: both do not fit


def test_skin_tones_false_trains_on_the_base_emoji_only(trained, tmp_path):
    cfg, _ = trained
    tensors, _ = load_token_split(cfg.stage_dirs["tokenize"], "train")
    variant = tensors["skin_tone_variant"].bool()
    assert variant.any() and not variant.all()  # the fixture's 👋🏻 is a training image
    base = dataclasses.replace(
        cfg,
        workdir=str(tmp_path / "run"),
        data=dataclasses.replace(cfg.data, skin_tones=False),
    )
    (tmp_path / "run").mkdir()
    for stage in ("text_tokenizer", "vqvae"):
        (tmp_path / "run" / stage).symlink_to(cfg.stage_dirs[stage])
    shutil.copytree(cfg.stage_dirs["tokenize"], base.stage_dirs["tokenize"])
    rows = training_rows(base, tensors)
    assert rows.tolist() == (~variant).nonzero().flatten().tolist()
    assert training_rows(cfg, tensors).tolist() == list(range(len(variant)))

    pad = layout_pad_id(load_trained_tokenizer(base).layout)
    path = ensure_coglm_samples(base, pad)  # the copied file holds every image: rebuilt
    per_sample = base.tokenize.text_slots + 1 + tensors["low"].shape[1]
    samples = torch.from_numpy(np.fromfile(path, dtype="<i4").reshape(-1, per_sample))
    templates = len(base.data.caption_templates)
    assert len(samples) == len(rows) * templates
    expected = tensors["low"][rows].repeat_interleave(templates, dim=0)
    assert torch.equal(samples[:, base.tokenize.text_slots + 1 :], expected)
    ensure_coglm_samples(cfg_all := dataclasses.replace(base, data=cfg.data), pad)
    assert path.stat().st_size == len(variant) * templates * per_sample * 4
    written = path.stat().st_mtime_ns
    ensure_coglm_samples(cfg_all, pad)  # up to date: neither rewritten nor replaced
    assert path.stat().st_mtime_ns == written

    # SR samples: the fixture's high-resolution subset misses 👋🏻, so also tokenise "all" of them
    base_rows = (~variant).nonzero().flatten()
    for high_index in (tensors["high_index"].long(), torch.arange(len(variant))):
        records, positions = sr_samples(base, {**tensors, "high_index": high_index})
        assert torch.equal(high_index[positions], records)
        assert set(records.tolist()) == set(high_index.tolist()) & set(base_rows.tolist())
    assert torch.equal(records, base_rows) and len(records) < len(variant)

    with pytest.raises(ValueError, match="re-run `cogview2 train tokenize`"):
        training_rows(base, {k: v for k, v in tensors.items() if k != "skin_tone_variant"})


def test_rerun_needs_resume_and_resume_skips_finished(trained):
    cfg, _ = trained
    with pytest.raises(ValueError, match="--resume"):
        run_recipe("dsr", cfg, progress=False)
    before = (cfg.stage_dirs["coglm"] / "log.jsonl").read_text()
    run_recipe("all", cfg, resume=True, progress=False)  # only `assemble` runs again
    assert (cfg.stage_dirs["coglm"] / "log.jsonl").read_text() == before


def test_dsr_resume_after_interruption_matches_uninterrupted(trained, tmp_path):
    cfg, _ = trained
    reference = read_sharded_model(cfg.stage_dirs["dsr"] / "checkpoint")
    ref_log = (cfg.stage_dirs["dsr"] / "log.jsonl").read_text().splitlines()
    cut = dataclasses.replace(cfg, workdir=str(tmp_path / "run"))
    for stage in ("text_tokenizer", "vqvae", "tokenize", "coglm"):
        (tmp_path / "run").mkdir(exist_ok=True)
        (tmp_path / "run" / stage).symlink_to(cfg.stage_dirs[stage])
    dsr_recipe(cut, progress=False, stop_after=2)  # interrupted after the checkpoint of step 2
    assert (
        json.loads((cut.stage_dirs["dsr"] / "checkpoint" / "state.json").read_text())["step"] == 2
    )
    assert not (cut.stage_dirs["dsr"] / "final").exists()
    dsr_recipe(cut, progress=False)  # resumes at step 2, runs step 3
    resumed = read_sharded_model(cut.stage_dirs["dsr"] / "checkpoint")
    assert resumed.keys() == reference.keys()
    for k in reference:
        torch.testing.assert_close(resumed[k], reference[k], rtol=1e-5, atol=1e-6)
    log = [json.loads(x) for x in (cut.stage_dirs["dsr"] / "log.jsonl").read_text().splitlines()]
    ref = [json.loads(x) for x in ref_log]
    assert [r["step"] for r in log] == [r["step"] for r in ref] == [2, 3]
    for got, want in zip(log, ref, strict=True):  # same batches, same masks, same losses
        assert abs(got["loss"] - want["loss"]) < 1e-5


def test_train_command_parses():
    parser = argparse.ArgumentParser()
    add_train_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["train", "coglm", "--config", "c.toml", "--resume"])
    assert (args.recipe, args.config, args.resume) == ("coglm", Path("c.toml"), True)
    assert RECIPE_NAMES[0] == "text-tokenizer" and RECIPE_NAMES[-1] == "assemble"
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "nonsense", "--config", "c.toml"])


def test_train_styles_keeps_those_styles_without_retokenising(trained):
    cfg, _ = trained
    tensors, _ = load_token_split(cfg.stage_dirs["tokenize"], "train")
    records = EmojiDataset(cfg.data.root, "train", cfg.data.low_size).records
    styles = sorted({r["style"] for r in records})
    assert len(styles) >= 2
    one = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, train_styles=(styles[0],)))
    rows = training_rows(one, tensors).tolist()
    assert rows == [i for i, r in enumerate(records) if r["style"] == styles[0]]
    both = dataclasses.replace(one, data=dataclasses.replace(one.data, skin_tones=False))
    assert training_rows(both, tensors).tolist() == [
        i for i in rows if records[i]["code"] == records[i]["concept"]
    ]
    every = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, train_styles=tuple(styles)))
    assert training_rows(every, tensors).tolist() == list(range(len(records)))
    with pytest.raises(ValueError, match=r"train_styles \['nope'\] have no training records"):
        training_rows(
            dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, train_styles=("nope",))),
            tensors,
        )
    with pytest.raises(ValueError, match="are not in styles"):
        dataclasses.replace(cfg.data, styles=(styles[0],), train_styles=(styles[1],))


def test_train_groups_keeps_those_groups_and_combines_with_styles(trained):
    cfg, _ = trained
    tensors, _ = load_token_split(cfg.stage_dirs["tokenize"], "train")
    records = EmojiDataset(cfg.data.root, "train", cfg.data.low_size).records
    groups, styles = sorted({r["group"] for r in records}), sorted({r["style"] for r in records})
    assert len(groups) >= 2
    data = dataclasses.replace(cfg.data, train_groups=(groups[0],))
    rows = training_rows(dataclasses.replace(cfg, data=data), tensors).tolist()
    assert rows == [i for i, r in enumerate(records) if r["group"] == groups[0]]
    data = dataclasses.replace(data, train_styles=(styles[0],))
    assert training_rows(dataclasses.replace(cfg, data=data), tensors).tolist() == [
        i for i in rows if records[i]["style"] == styles[0]
    ]
    bad = dataclasses.replace(cfg.data, train_groups=(groups[0], "nope"))
    with pytest.raises(ValueError, match=r"train_groups \['nope'\] have no training records"):
        training_rows(dataclasses.replace(cfg, data=bad), tensors)


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(path)


def _on_weights(cfg, tmp: Path, retrain: tuple[str, ...], **sections):
    """A run on the `trained` fixture's weights folder that trains only ``retrain``."""
    return dataclasses.replace(
        cfg,
        workdir=str(tmp / "run"),
        start_from=str(cfg.assemble.out),
        retrain=retrain,
        assemble=dataclasses.replace(cfg.assemble, out=str(tmp / "weights")),
        **sections,
    )


def test_start_from_trains_new_sr_models_on_the_trained_records_of_shipped_weights(
    trained, tmp_path
):
    cfg, weights = trained
    data = dataclasses.replace(cfg.data, skin_tones=False, train_styles=("twemoji",))
    run = _on_weights(
        cfg,
        tmp_path,
        ("dsr", "itersr"),
        data=data,
        tokenize=dataclasses.replace(cfg.tokenize, high_images=0, high_subset="trained"),
        dsr=dataclasses.replace(cfg.dsr, train_base=True),
    )
    out = run_recipe("all", run, progress=False)
    dirs = run.stage_dirs
    assert not dirs["text_tokenizer"].exists() and not dirs["vqvae"].exists()
    assert not dirs["coglm"].exists()  # the weights folder's CogLM, not trained here
    # the 480 px (here 96 px) renders tokenised are exactly the records the SR models train on
    tensors, _ = load_token_split(dirs["tokenize"], "train")
    records = EmojiDataset(cfg.data.root, "train", cfg.data.low_size).records
    kept = [
        i for i, r in enumerate(records) if r["style"] == "twemoji" and r["code"] == r["concept"]
    ]
    assert tensors["high_index"].tolist() == kept == training_rows(run, tensors).tolist()
    assert np.array_equal(
        np.load(dirs["tokenize"] / "cluster_labels.npy"), np.load(weights / "cluster_labels.npy")
    )
    # assembled: tokenizer, CogLM and labels are the weights folder's, bit for bit; DSR and
    # ITERSR are new, and DSR stores the transformer it fine-tuned
    for part in ("coglm/model.safetensors", "tokenizer/image.safetensors"):
        old, new = _tensors(weights / part), _tensors(out / part)
        assert old.keys() == new.keys() and all(torch.equal(old[k], new[k]) for k in old)
    manifest = json.loads((out / "pipeline.json").read_text())
    assert manifest["dsr"]["shares_base"] is None and (out / "dsr" / "base").is_dir()
    for sr in ("dsr", "itersr"):
        old, new = (
            _tensors(weights / sr / "mixins.safetensors"),
            _tensors(out / sr / "mixins.safetensors"),
        )
        assert any(not torch.equal(old[k], new[k]) for k in old)
    pipe = CogView2Pipeline.from_pretrained(out, dtype=torch.float32)
    assert pipe.dsr.base is not pipe.coglm
    with pytest.raises(ValueError, match="provides the coglm model; name it in retrain"):
        run_recipe("coglm", run, progress=False)


def test_start_from_fine_tunes_coglm_to_end_captions_and_keeps_the_sr_models(trained, tmp_path):
    cfg, weights = trained
    run = _on_weights(
        cfg,
        tmp_path,
        ("coglm",),
        coglm=dataclasses.replace(
            cfg.coglm,
            caption_end=True,
            caption_ratio=0.9,
            caption_roundtrip="decode",
            prompted_infilling=6,
            infill_box_sides=(1, 2),
        ),
    )
    out = run_recipe("all", run, progress=False)
    assert not run.stage_dirs["dsr"].exists() and not run.stage_dirs["itersr"].exists()
    # caption_roundtrip: a caption-only copy of every sample, image tokens decoded and re-encoded
    from coglm_core import TokenDataset
    from cogview2.training.roundtrip import ROUNDTRIP_FILE, roundtrip_ids
    from cogview2.training.tokenizers import load_trained_tokenizer

    folder = run.stage_dirs["tokenize"]
    seq = run.tokenize.text_slots + 1 + (run.data.low_size // 8) ** 2
    plain = torch.stack(list(TokenDataset(folder / "coglm-train.bin", seq)))
    again = torch.stack(list(TokenDataset(folder / ROUNDTRIP_FILE, seq)))
    n_img = (run.data.low_size // 8) ** 2
    assert torch.equal(again[:, :-n_img], plain[:, :-n_img])  # the same captions
    want = roundtrip_ids(load_trained_tokenizer(run), plain[:, -n_img:])
    assert torch.equal(again[:, -n_img:], want) and not torch.equal(want, plain[:, -n_img:])
    # prompted_infilling ("window"): a plain sample's caption; in the box that sample's own
    # cells, outside another picture's
    from cogview2.training.composites import RegionSamples, composite_samples

    pairs = RegionSamples(folder, seq, n_img)
    assert len(pairs) == 6
    images = plain[:, -n_img:]
    for sample, region in pairs:
        assert 1 <= int(region.sum()) <= 4 and int(region.sum()) < n_img
        caption = (plain[:, :-n_img] == sample[:-n_img]).all(1)
        inside = (images[:, region] == sample[-n_img:][region]).all(1)
        pasted = images[caption & inside][0]
        ground = (images[:, ~region] == sample[-n_img:][~region]).all(1)
        ground &= ~(images == pasted).all(1)  # another picture
        assert ground.any()
    # "shrink": the box holds the encoded picture with the other one shrunk into it
    tokenizer = load_trained_tokenizer(run)
    made, regions = composite_samples(
        tokenizer, plain, num_images=n_img, count=3, sides=(2, 3), mode="shrink", seed=1
    )
    assert made.shape == (3, seq) and regions.sum(1).ge(4).all()
    for sample, region in zip(made, regions, strict=True):
        assert (images[:, ~region] == sample[-n_img:][~region]).all(1).any()
    with pytest.raises(ValueError, match="mode must be one of"):
        composite_samples(tokenizer, plain, num_images=n_img, count=1, sides=(1, 2), mode="x")
    old, new = (
        _tensors(weights / "coglm/model.safetensors"),
        _tensors(out / "coglm/model.safetensors"),
    )
    assert any(not torch.equal(old[k], new[k]) for k in old)  # fine-tuned
    # DSR shared the old CogLM: it keeps it, now stored apart; ITERSR is unchanged
    manifest = json.loads((out / "pipeline.json").read_text())
    assert manifest["dsr"]["shares_base"] is None and manifest["config"]["caption_end"] is True
    dsr_base = _tensors(out / "dsr/base/model.safetensors")
    assert all(torch.equal(dsr_base[k], old[k]) for k in old)
    for part in ("dsr/mixins.safetensors", "itersr/mixins.safetensors"):
        a, b = _tensors(weights / part), _tensors(out / part)
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_pipeline_roundtrip_samples_hold_the_tokens_of_drawn_pictures(
    trained, tmp_path, monkeypatch
):
    """caption_roundtrip = 'pipeline': each caption-only copy holds the stage-1 ids of the
    picture the start_from weights' SR stages draw from the sample's grid and caption."""
    from coglm_core import TokenDataset
    from cogview2 import CogView2Pipeline
    from cogview2.training.roundtrip import ROUNDTRIP_FILE, ensure_roundtrip_samples
    from cogview2.training.tokenize_data import ensure_coglm_samples
    from cogview2.training.tokenizers import load_trained_tokenizer

    cfg, weights = trained
    run = _on_weights(cfg, tmp_path, ("coglm",),
                      coglm=dataclasses.replace(cfg.coglm, caption_roundtrip="pipeline"))  # fmt: skip
    shutil.copytree(cfg.stage_dirs["tokenize"], run.stage_dirs["tokenize"])
    tokenizer = load_trained_tokenizer(run)
    pipe = CogView2Pipeline.from_pretrained(weights, dtype=torch.float32)
    ensure_coglm_samples(run, pipe.coglm.config.pad_id)
    seq = pipe.coglm.config.sequence_length
    path = ensure_roundtrip_samples(run, tokenizer, seq, progress=False)
    assert path.name == ROUNDTRIP_FILE
    plain = torch.stack(list(TokenDataset(run.stage_dirs["tokenize"] / "coglm-train.bin", seq)))
    again = torch.stack(list(TokenDataset(path, seq)))
    n_img = pipe.low_grid**2
    assert torch.equal(again[:, :-n_img], plain[:, :-n_img])
    # the first sample, redrawn by hand as a caption of the drawn picture would see it
    text = plain[0, :-n_img].tolist()
    prompt = tokenizer.decode_text(text[: text.index(pipe.coglm.config.pad_id)])
    grids = torch.unique(plain[:, -n_img:], dim=0)
    index = int((grids == plain[0, -n_img:]).all(1).nonzero()[0])
    picture = pipe.super_resolve(
        prompt, plain[:1, -n_img:], generator=torch.Generator().manual_seed(index)
    ).images
    want = pipe.encode_pixels(picture.float(), pipe.low_image_size).reshape(-1)
    assert torch.equal(again[0, -n_img:], want)
    assert ensure_roundtrip_samples(run, tokenizer, seq, progress=False) == path  # up to date
    # other SR weights in the same folder: the pictures are drawn again
    import cogview2.training.roundtrip as roundtrip

    meta = path.parent / (ROUNDTRIP_FILE + ".json")
    assert json.loads(meta.read_text())["sr_sha256"] == roundtrip._sr_digest(Path(weights))
    monkeypatch.setattr(roundtrip, "_sr_digest", lambda folder: "other weights")
    assert ensure_roundtrip_samples(run, tokenizer, seq, progress=False) == path
    assert json.loads(meta.read_text())["sr_sha256"] == "other weights"


def test_start_from_and_retrain_are_checked():
    cfg = load_training_config(PACKAGE / "configs" / "tiny-test.toml")
    with pytest.raises(ValueError, match="start_from and retrain go together"):
        dataclasses.replace(cfg, start_from="weights")
    with pytest.raises(ValueError, match="start_from and retrain go together"):
        dataclasses.replace(cfg, retrain=("dsr",))
    with pytest.raises(ValueError, match=r"retrain \['vqvae'\] are not models"):
        dataclasses.replace(cfg, start_from="w", retrain=("vqvae",))
    with pytest.raises(ValueError, match="high_subset must be 'random' or 'trained'"):
        dataclasses.replace(cfg.tokenize, high_subset="some")
    with pytest.raises(ValueError, match="high_images must be 0 with high_subset"):
        dataclasses.replace(cfg.tokenize, high_images=4, high_subset="trained")
    with pytest.raises(ValueError, match="train_base must be true or false"):
        dataclasses.replace(cfg.dsr, train_base="yes")
    with pytest.raises(ValueError, match="caption_end needs variant = 'paper'"):
        dataclasses.replace(cfg.coglm, variant="released", caption_end=True)
    with pytest.raises(ValueError, match="caption_roundtrip must be '', 'decode' or 'pipeline'"):
        dataclasses.replace(cfg.coglm, caption_roundtrip="yes")
    with pytest.raises(ValueError, match="caption_roundtrip = 'pipeline' needs start_from"):
        dataclasses.replace(cfg, coglm=dataclasses.replace(cfg.coglm, caption_roundtrip="pipeline"))
    with pytest.raises(ValueError, match="prompted_infilling must be an int >= 0"):
        dataclasses.replace(cfg.coglm, prompted_infilling=-1)
    with pytest.raises(ValueError, match="infill_box_sides must be"):
        dataclasses.replace(cfg.coglm, infill_box_sides=(4, 2))
    with pytest.raises(ValueError, match="infill_composite must be 'window' or 'shrink'"):
        dataclasses.replace(cfg.coglm, infill_composite="paste")
    for name in ("emoji-demo-sr.toml", "emoji-demo-captions.toml"):  # the shipped chains parse
        chain = load_training_config(PACKAGE / "configs" / name)
        assert chain.start_from and chain.retrain


def test_sr_init_start_from_continues_the_weights_folder_models(trained, tmp_path):
    """``[dsr] init = "start_from"``: a later session trains the shipped DSR and ITERSR further
    (one step at a negligible learning rate leaves them as they were)."""
    cfg, weights = trained
    tiny_lr = {"lr": 1e-12, "warmup_steps": 0, "steps": 1}
    run = _on_weights(
        cfg,
        tmp_path,
        ("dsr", "itersr"),
        dsr=dataclasses.replace(cfg.dsr, init="start_from", train_base=True, **tiny_lr),
        itersr=dataclasses.replace(cfg.itersr, init="start_from", **tiny_lr),
    )
    out = run_recipe("all", run, progress=False)
    for sr in ("dsr", "itersr"):
        old, new = (
            _tensors(weights / sr / "mixins.safetensors"),
            _tensors(out / sr / "mixins.safetensors"),
        )
        for k in old:
            torch.testing.assert_close(new[k].float(), old[k].float(), rtol=0, atol=1e-3)
    old, new = (
        _tensors(weights / "coglm/model.safetensors"),
        _tensors(out / "dsr/base/model.safetensors"),
    )
    for k in old:  # DSR's own base starts as the shared CogLM it had
        torch.testing.assert_close(new[k].float(), old[k].float(), rtol=0, atol=1e-3)
    with pytest.raises(ValueError, match="init = 'start_from' needs start_from"):
        dataclasses.replace(cfg, dsr=dataclasses.replace(cfg.dsr, init="start_from"))
    with pytest.raises(ValueError, match="init must be 'coglm' or 'start_from'"):
        dataclasses.replace(cfg.itersr, init="weights")


def test_random_boxes_stay_inside_the_grid_and_leave_context():
    from cogview2.training.composites import random_box

    gen = torch.Generator().manual_seed(0)
    boxes = [random_box(20, (5, 12), gen) for _ in range(200)]
    assert all(5 <= b.height <= 12 and 5 <= b.width <= 12 for b in boxes)
    assert all(b.top + b.height <= 20 and b.left + b.width <= 20 for b in boxes)
    assert {b.height for b in boxes} == set(range(5, 13))  # every side occurs
    assert int(boxes[0].cells(20).sum()) == boxes[0].height * boxes[0].width
    with pytest.raises(ValueError, match="do not leave context"):
        random_box(4, (1, 4), gen)
