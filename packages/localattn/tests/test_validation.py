"""Bad input gets a ValueError that names the problem."""

from __future__ import annotations

import pytest
import torch

import localattn


def t(*shape, **kw):
    return torch.randn(*shape, **kw)


Q, K = t(1, 2, 4, 6, 8), t(1, 2, 2, 3, 8)
EK = t(1, 2, 3, 8)

BAD = {
    "q rank": (lambda: localattn.local_attention_2d(t(2, 4, 6, 8), K, K, 3), "q must have 5 dims"),
    "k rank": (lambda: localattn.local_attention_2d(Q, t(2, 2, 3, 8), K, 3), "k must have 5 dims"),
    "k/v shapes": (lambda: localattn.local_attention_2d(Q, K, t(1, 2, 2, 3, 4), 3), "same shape"),
    "heads": (lambda: localattn.local_attention_2d(Q, t(1, 3, 2, 3, 8), t(1, 3, 2, 3, 8), 3), "heads"),
    "head dim": (lambda: localattn.local_attention_2d(Q, t(1, 2, 2, 3, 4), t(1, 2, 2, 3, 4), 3), "head dim"),
    "grid": (lambda: localattn.local_attention_2d(Q, t(1, 2, 3, 3, 8), t(1, 2, 3, 3, 8), 3), "integer multiple"),
    "even causal": (lambda: localattn.local_attention_2d(Q, K, K, (4, 3), causal=True), "odd window"),
    "kernel": (lambda: localattn.local_attention_2d(Q, K, K, (0, 3)), "positive int"),
    "kernel type": (lambda: localattn.local_attention_2d(Q, K, K, "3"), "int or a pair"),
    "dtype": (lambda: localattn.local_attention_2d(Q, K.double(), K.double(), 3), "dtype"),
    "int dtype": (lambda: localattn.local_attention_2d(Q.long(), K.long(), K.long(), 3), "not supported"),
    "device": (lambda: localattn.local_attention_2d(Q, K.to("meta"), K.to("meta"), 3), "device"),
    "empty": (lambda: localattn.local_attention_2d(t(1, 2, 0, 6, 8), K, K, 3), "empty"),
    "extra half": (lambda: localattn.local_attention_2d(Q, K, K, 3, extra_k=EK), "together"),
    "extra shape": (lambda: localattn.local_attention_2d(Q, K, K, 3, extra_k=t(1, 2, 3, 4), extra_v=t(1, 2, 3, 4)), "extra_k shape"),
    "bias shape": (lambda: localattn.local_attention_2d(Q, K, K, 3, extra_k=EK, extra_v=EK, extra_bias=t(4, 3)), "broadcast"),
    "mask dtype": (lambda: localattn.local_attention_2d(Q, K, K, 3, extra_k=EK, extra_v=EK, extra_mask=t(1, 3)), "bool"),
    "mask shape": (lambda: localattn.local_attention_2d(Q, K, K, 3, extra_k=EK, extra_v=EK, extra_mask=torch.ones(1, 4, dtype=torch.bool)), r"\(B, T\)"),
    "bias no extra": (lambda: localattn.local_attention_2d(Q, K, K, 3, extra_bias=t(3)), "need extra_k"),
    "scale": (lambda: localattn.local_attention_2d(Q, K, K, 3, scale=-1.0), "scale"),
    "merge count": (lambda: localattn.merge_attentions([t(2, 3)], []), "as many"),
    "merge shapes": (lambda: localattn.merge_attentions([t(2, 3), t(2, 3)], [t(2), t(3)]), "must be"),
    "module heads": (lambda: localattn.LocalAttention2d(10, 3, 3), "multiple of num_heads"),
}  # fmt: skip


@pytest.mark.parametrize("call, match", list(BAD.values()), ids=list(BAD))
def test_bad_input_raises_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()
