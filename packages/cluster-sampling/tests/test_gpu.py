"""CUDA logits give the same ids as CPU logits for the same CPU generator (uniforms drawn on CPU)."""

from __future__ import annotations

import pytest
import torch

from cluster_sampling import ClusterSampler, TokenSampler, TopKSampler, TopP


@pytest.mark.gpu
def test_cuda_matches_cpu_for_a_cpu_generator() -> None:
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 50, (2000,), generator=gen)
    logits = torch.randn(4, 64, 2000, generator=gen, dtype=torch.float64) * 3
    samplers = (ClusterSampler(labels, 10, 1.0, 0.89), TopKSampler(40), TokenSampler([TopP(0.9)]))
    for sampler in samplers:
        cpu = sampler(logits, torch.Generator().manual_seed(1))
        cuda = sampler(logits.cuda(), torch.Generator().manual_seed(1))
        assert cuda.device.type == "cuda"
        assert torch.equal(cpu, cuda.cpu())
    fp32 = ClusterSampler(labels, 10, 1.0, 0.89)(logits.float().cuda(), torch.Generator("cuda"))
    assert fp32.shape == (4, 64) and int(fp32.max()) < 2000
