import math

import torch

from coglm_core import (
    CogLMConfig,
    coglm_loss,
    masked_token_losses,
    modality_losses,
    next_token_labels,
)


def test_loss_counts_exactly_the_masked_predictions() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 6, 10, dtype=torch.float64)
    ids = torch.randint(0, 10, (2, 6))
    labels = next_token_labels(ids)
    mask = torch.tensor([[0, 1, 1, 0, 0, 0], [1, 0, 0, 0, 1, 0]], dtype=torch.bool)
    loss = coglm_loss(logits, labels, mask)
    logp = torch.log_softmax(logits, -1)
    manual = -sum(float(logp[b, i, ids[b, i + 1]]) for b, i in mask.nonzero().tolist()) / 4
    assert math.isclose(float(loss), manual, rel_tol=1e-6)
    # changing logits at uncounted positions changes nothing; at counted positions it does
    other = logits.clone()
    other[~mask] = torch.randn_like(other[~mask])
    assert float(coglm_loss(other, labels, mask)) == float(loss)
    other[0, 1] += torch.randn(10, dtype=torch.float64)
    assert float(coglm_loss(other, labels, mask)) != float(loss)
    grad_logits = logits.clone().requires_grad_(True)
    coglm_loss(grad_logits, labels, mask).backward()
    assert torch.equal(grad_logits.grad.abs().sum(-1) > 0, mask)


def test_modality_split_uses_config_ranges() -> None:
    c = CogLMConfig.tiny()
    labels = torch.tensor([[1, 70, 100, 68, 125]])
    losses = torch.ones(1, 5)
    out = modality_losses(losses, labels, torch.ones(1, 5, dtype=torch.bool), c)
    assert out == {"image": (1.0, 1), "english": (1.0, 1), "chinese": (1.0, 1)}
    per_token = masked_token_losses(torch.zeros(1, 5, 128), labels)
    assert torch.allclose(per_token, torch.full((1, 5), math.log(128)))
