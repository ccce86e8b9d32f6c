"""Backend choice: auto, explicit, context manager, env var; reasons; the info table."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest
import torch

import localattn
from localattn import dispatch
from localattn._validate import validate_attention
from localattn.backends import triton as triton_backend


def _inputs(requires_grad=False, **kw):
    q = torch.randn(1, 1, 4, 4, 8, requires_grad=requires_grad)
    k = torch.randn(1, 1, 4, 4, 8)
    kw = {"causal": False, "extra_k": None, "extra_v": None, "extra_bias": None,
          "extra_mask": None, "scale": None, **kw}  # fmt: skip
    return validate_attention(q, k, k, 3, **kw)


def test_auto_picks_reference_on_cpu(monkeypatch):
    monkeypatch.delenv(dispatch.ENV_VAR, raising=False)
    assert localattn.select_backend(_inputs()).NAME == "reference"


def test_context_manager_and_env_var(monkeypatch):
    monkeypatch.setenv(dispatch.ENV_VAR, "flex")
    assert localattn.select_backend(_inputs()).NAME == "flex"
    with localattn.use_backend("reference"):
        assert localattn.select_backend(_inputs()).NAME == "reference"
        with localattn.use_backend("flex"):
            assert localattn.select_backend(_inputs()).NAME == "flex"
        assert localattn.select_backend(_inputs()).NAME == "reference"
    assert localattn.select_backend(_inputs(), "reference").NAME == "reference"  # argument wins


def test_explicit_triton_on_cpu_names_reasons(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(
        ValueError, match=r"'triton' cannot run.*device type 'cpu'.*TRITON_INTERPRET"
    ):
        localattn.local_attention_2d(*(torch.randn(1, 1, 4, 4, 8) for _ in range(3)), 3,
                                     backend="triton")  # fmt: skip


def test_flex_refuses_cpu_backward_and_unknown_names_raise():
    reasons = localattn.get_backend("flex").not_supported_reasons(_inputs(requires_grad=True))
    assert any("no cpu backward" in r for r in reasons)
    with pytest.raises(ValueError, match="known"):
        localattn.local_attention_2d(*(torch.randn(1, 1, 4, 4, 8) for _ in range(3)), 3,
                                     backend="cuda-magic")  # fmt: skip
    with pytest.raises(ValueError, match="known"), localattn.use_backend("nope"):
        pass


def test_triton_missing_is_a_reason(monkeypatch):
    monkeypatch.setattr(triton_backend.importlib.util, "find_spec", lambda name: None)
    reasons = localattn.get_backend("triton").not_supported_reasons(_inputs())
    assert any("pip install localattn[triton]" in r for r in reasons)


def test_package_works_without_triton():
    code = (
        "import sys; sys.modules['triton'] = None\n"
        "import torch, localattn\n"
        "x = torch.randn(1, 1, 4, 4, 8)\n"
        "assert localattn.local_attention_2d(x, x, x, 3).shape == x.shape\n"
        "print(localattn.get_backend('triton').is_available())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install localattn[triton]" in out.stdout


def test_info_prints_table(capsys):
    from localattn import info

    info.main()
    text = capsys.readouterr().out
    for name in ("reference", "triton", "flex", dispatch.ENV_VAR):
        assert name in text
    rows = {line.split()[0]: line for line in text.splitlines() if line}
    for name in ("reference", "triton", "flex"):  # each backend lists the neighborhood ops
        assert "local_attention_2d,na1d,na2d,na3d" in rows[name]


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton not installed")
@pytest.mark.parametrize("op", ["local_attention_2d", "na2d"])
def test_triton_compile_failure_falls_back_with_one_warning(monkeypatch, op):
    """An automatically chosen backend whose kernels fail to compile is skipped from then on,
    with a one-line warning; the call returns the next backend's result. Forced by name, the
    failure is raised."""
    import warnings

    from triton.compiler.errors import CompilationError

    from localattn import dispatch
    from localattn._triton import kernels, na_kernels

    def broken(*args, **kwargs):
        raise CompilationError(None, None, "forced failure: no ptxas here")

    monkeypatch.setattr(kernels, "launch_forward", broken)
    monkeypatch.setattr(na_kernels, "launch_na_forward", broken)
    monkeypatch.setattr(dispatch, "_FAILED", set())
    monkeypatch.setitem(dispatch.PRIORITY, "cpu", ("triton", "reference"))
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    g = torch.Generator().manual_seed(0)
    if op == "na2d":
        q, k, v = torch.randn(3, 1, 6, 6, 2, 8, generator=g).unbind(0)
    else:
        q, k, v = torch.randn(3, 1, 2, 6, 6, 8, generator=g).unbind(0)
    fn = getattr(localattn, op)
    want = fn(q, k, v, 3, backend="reference")
    with pytest.warns(RuntimeWarning, match="backend 'triton' failed to compile on cpu") as rec:
        got = fn(q, k, v, 3)
    assert len(rec) == 1 and "\n" not in str(rec[0].message)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        torch.testing.assert_close(fn(q, k, v, 3), want, rtol=0, atol=0)  # no second warning
    with pytest.raises(CompilationError):
        fn(q, k, v, 3, backend="triton")
