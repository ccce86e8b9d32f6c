"""The streaming safetensors writer reads back with the safetensors library, bit for bit;
`atomic_path` never leaves a half-written file."""

from __future__ import annotations

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from coglm_core import atomic_path, save_safetensors


def test_streamed_file_reads_back_exactly(tmp_path) -> None:
    g = torch.Generator().manual_seed(0)
    tensors = {
        "b.bf16": torch.randn(3, 5, generator=g).bfloat16(),
        "a.f32": torch.randn(4, 6, generator=g)[:, ::2],  # non-contiguous
        "c.i8": torch.randint(-127, 128, (7,), generator=g, dtype=torch.int8),
        "d.f16": torch.randn(2, 2, 2, generator=g).half(),
        "e.i64": torch.randint(0, 10**9, (3,), generator=g),
        "f.bool": torch.rand(5, generator=g) > 0.5,
        "g.empty": torch.zeros(0, 4),
        "h.scalar": torch.tensor(1.5),
    }
    path = tmp_path / "x.safetensors"
    save_safetensors(tensors, path, metadata={"format": "pt", "note": "é"})
    back = load_file(path)
    assert back.keys() == tensors.keys()
    for k, v in tensors.items():
        assert back[k].dtype == v.dtype and torch.equal(back[k], v), k
    with safe_open(path, "pt") as f:
        assert f.metadata() == {"format": "pt", "note": "é"}
    assert not list(tmp_path.glob(".*.tmp"))  # written through a temporary file


def test_unsupported_dtype_is_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="complex64"):
        save_safetensors({"z": torch.zeros(2, dtype=torch.complex64)}, tmp_path / "z.safetensors")
    assert not (tmp_path / "z.safetensors").exists()


def test_save_state_dict_is_the_save_pretrained_folder(tmp_path) -> None:
    from coglm_core import CogLM, CogLMConfig, from_pretrained, save_pretrained
    from coglm_core.pretrained import save_state_dict

    torch.manual_seed(0)
    model = CogLM(CogLMConfig.tiny()).eval()
    save_pretrained(model, tmp_path / "a")
    save_state_dict(model.state_dict(), model.config, tmp_path / "b")
    for name in ("model.safetensors", "config.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    back = from_pretrained(tmp_path / "b")
    assert all(torch.equal(v, back.state_dict()[k]) for k, v in model.state_dict().items())


def test_atomic_path_replaces_on_success_and_keeps_the_old_file_on_failure(tmp_path) -> None:
    target = tmp_path / "sub" / "out.txt"
    with atomic_path(target) as tmp:
        tmp.write_text("first")
    assert target.read_text() == "first" and target.stat().st_mode & 0o777 == 0o644
    with pytest.raises(RuntimeError, match="killed"), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "first"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]  # no temporary left
