"""Saving/loading the pipeline folder and converting official SAT checkpoints."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from coglm_core.sat_checkpoint import write_sat_checkpoint
from cogview2 import CogView2Pipeline, convert_official


def _tokens(pipe: CogView2Pipeline) -> torch.Tensor:
    return pipe(
        "a red apple",
        num_images=2,
        generator=torch.Generator().manual_seed(0),
        progress=False,
        output_type="tokens",
    ).tokens


def test_save_and_load_round_trip(tiny_pipe, tmp_path) -> None:
    tiny_pipe.save_pretrained(tmp_path / "p")
    manifest = json.loads((tmp_path / "p" / "pipeline.json").read_text())
    assert manifest["dsr"]["shares_base"] == "coglm" and manifest["itersr"]["shares_base"] is None
    assert not (tmp_path / "p" / "dsr" / "base").exists()  # the shared base is stored once
    loaded = CogView2Pipeline.from_pretrained(tmp_path / "p")
    assert loaded.dsr.base is loaded.coglm and loaded.itersr.base is not loaded.coglm
    assert torch.equal(_tokens(loaded), _tokens(tiny_pipe))


def test_missing_file_is_named(tiny_pipe, tmp_path) -> None:
    root = tiny_pipe.save_pretrained(tmp_path / "p")
    (root / "itersr" / "mixins.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"mixins\.safetensors"):
        CogView2Pipeline.from_pretrained(root)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        CogView2Pipeline.from_pretrained(tmp_path / "nowhere")


def test_converter_round_trips_official_layout(tiny_pipe, tmp_path) -> None:
    src = tiny_pipe
    cfg = src.coglm.config
    base = src.coglm.state_dict()
    write_sat_checkpoint(tmp_path / "coglm", base, cfg, iteration=432000)
    # the DSR file stores its own full transformer (here equal to coglm's) + mixins
    write_sat_checkpoint(
        tmp_path / "cogview2-dsr",
        {**base, **src.dsr.mixin_state_dict()},
        cfg,
        iteration=20000,
        model_class="DsrModel",
    )
    # the hub's nested layout for ITERSR, plus unused attention_plus tensors
    itersr_sd = {**src.itersr.base.state_dict(), **src.itersr.mixin_state_dict()}
    itersr_sd["mixins.attention_plus.dense.0.bias"] = torch.zeros(cfg.hidden_size)
    write_sat_checkpoint(
        tmp_path / "hub", itersr_sd, cfg, iteration=20000, nested_name="cogview2-itersr"
    )
    src.tokenizer.save_pretrained(tmp_path / "icetk")
    np.save(tmp_path / "cluster_label.npy", src.cluster_labels.numpy())

    report = convert_official(
        tmp_path / "coglm",
        tmp_path / "cogview2-dsr",
        tmp_path / "hub",
        tmp_path / "icetk",
        tmp_path / "cluster_label.npy",
        tmp_path / "out",
        coglm_config=cfg,
        dsr_config=src.dsr.config,
        itersr_config=src.itersr.config,
        pipeline_config=src.config,
    )
    assert report.dsr_shares_base and not report.itersr_shares_base
    assert report.ignored_keys["itersr"] == ["mixins.attention_plus.dense.0.bias"]
    out = CogView2Pipeline.from_pretrained(report.output)
    for a, b in ((out.coglm, src.coglm), (out.itersr.base, src.itersr.base)):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    for a, b in ((out.dsr, src.dsr), (out.itersr, src.itersr)):
        sa, sb = a.mixin_state_dict(), b.mixin_state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert out.dsr.base is out.coglm


def test_build_sr_follows_the_config_type() -> None:
    import pytest

    from coglm_core import CogLM, CogLMConfig
    from cogview2.models import (
        DirectSuperResolution,
        DSRConfig,
        IterativeSuperResolution,
        ITERSRConfig,
        build_sr,
    )

    base = CogLM(CogLMConfig.tiny(), device="meta")
    dsr = build_sr(base, DSRConfig(low_grid=4, high_grid=12, text_slots=8))
    itersr = build_sr(base, ITERSRConfig(high_grid=12, text_slots=8))
    assert type(dsr) is DirectSuperResolution and type(itersr) is IterativeSuperResolution
    assert dsr.base is itersr.base is base and base.device.type == "meta"
    with pytest.raises(ValueError, match="no super-resolution model for CogLMConfig"):
        build_sr(base, CogLMConfig.tiny())  # type: ignore[arg-type]


def test_sr_models_own_their_folder_format(tiny_pipe, tmp_path) -> None:
    """``save_pretrained`` writes an SR model (its base only when it is not the shared one);
    ``load_sr`` reads it back, bit for bit."""
    import torch

    from cogview2.models.sr import SHARED, load_sr

    dsr, itersr, coglm = tiny_pipe.dsr, tiny_pipe.itersr, tiny_pipe.coglm
    assert dsr.save_pretrained(tmp_path / "dsr", shared_base=coglm) == SHARED
    assert not (tmp_path / "dsr" / "base").exists()
    assert itersr.save_pretrained(tmp_path / "itersr", shared_base=coglm) is None
    assert (tmp_path / "itersr" / "base" / "model.safetensors").is_file()
    again = load_sr(tmp_path / "dsr", coglm, SHARED, device="cpu", dtype=None)
    assert again.base is coglm and again.config == dsr.config
    own = load_sr(tmp_path / "itersr", coglm, None, device="cpu", dtype=None)
    from cogview2.models import DirectSuperResolution, IterativeSuperResolution

    assert DirectSuperResolution.from_pretrained(tmp_path / "dsr", coglm).base is coglm
    assert IterativeSuperResolution.from_pretrained(tmp_path / "itersr").base is not coglm
    import pytest

    with pytest.raises(ValueError, match="holds a IterativeSuperResolution, not a Direct"):
        DirectSuperResolution.from_pretrained(tmp_path / "itersr")
    for a, b in ((again, dsr), (own, itersr)):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
