"""Eq. 2 against a hand computation, and logit accumulation against a plain full-batch step."""

from __future__ import annotations

import math

import pytest
import torch

from core.model import ModelConfig, build_model
from trainer.losses import contrastive_loss, reconstruction_error
from trainer.step import Objective, TrainModule, accumulated_step, plain_step


def test_contrastive_loss_matches_hand_computation():
    # Four 2-D unit vectors, pairs (0,1) and (2,3); tau = 0.5.
    z = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [-0.8, 0.6]])
    labels = torch.tensor([0, 0, 1, 1])
    tau = 0.5
    dots = [[float(a @ b) for b in z] for a in z]
    expected = 0.0
    for i, p in ((0, 1), (1, 0), (2, 3), (3, 2)):
        negatives = [n for n in range(4) if n not in (i, p)]
        expected += -math.log(math.exp(dots[i][p] / tau) / sum(math.exp(dots[i][n] / tau) for n in negatives))
    expected /= 4
    assert contrastive_loss(z, labels, tau).item() == pytest.approx(expected, rel=1e-6)
    # A hand value for anchor 0 alone: log(e^{0/0.5} + e^{-0.8/0.5}) - 0.6/0.5.
    assert math.log(1 + math.exp(-1.6)) - 1.2 == pytest.approx(
        -math.log(math.exp(dots[0][1] / tau) / sum(math.exp(dots[0][n] / tau) for n in (2, 3))))


def test_contrastive_loss_prefers_grouped_embeddings():
    labels = torch.tensor([0, 0, 1, 1])
    good = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    bad = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    assert contrastive_loss(good, labels) < contrastive_loss(bad, labels)


def test_contrastive_loss_rejects_batches_without_pairs():
    with pytest.raises(ValueError):
        contrastive_loss(torch.eye(3), torch.tensor([0, 1, 2]))


def test_reconstruction_error_is_per_image_mean_absolute_error():
    target = torch.zeros(2, 3, 4, 4)
    recon = torch.zeros(2, 3, 4, 4)
    recon[1] = 2.0
    assert reconstruction_error(recon, target).tolist() == [0.0, 2.0]


def _grads(module):
    return {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("lambda_rec", [1e-2, 0.0])
def test_logit_accumulation_gradients_equal_full_batch(lambda_rec):
    torch.manual_seed(0)
    net = build_model(ModelConfig(input_size=32), seed=1)
    module = TrainModule(net)
    x = torch.randn(12, 3, 32, 32)
    labels = torch.arange(6).repeat_interleave(2)
    objective = Objective(tau=0.1, lambda_rec=lambda_rec)

    full = plain_step(module, x, labels, objective)
    reference = _grads(module)
    module.zero_grad(set_to_none=True)
    chunked = accumulated_step(module, x, labels, objective, chunk_size=5)
    accumulated = _grads(module)

    assert chunked.total == pytest.approx(full.total, rel=1e-5)
    assert chunked.reconstruction == pytest.approx(full.reconstruction, rel=1e-5)
    assert reference.keys() == accumulated.keys()
    decoder_grads = [n for n in reference if n.startswith(("net.decoder", "net.content_encoder"))]
    assert bool(decoder_grads) == (lambda_rec > 0), "the reconstruction branch runs only when weighted"
    for name, g in reference.items():
        # float32 tolerance: chunked convolutions sum in a different order than the full batch.
        scale = g.abs().max().item()
        torch.testing.assert_close(accumulated[name], g, rtol=1e-3, atol=1e-4 * scale + 1e-8, msg=name)


def test_accumulation_scales_gradients_with_the_amp_grad_scaler():
    net = build_model(ModelConfig(input_size=32), seed=2)
    module = TrainModule(net)
    x = torch.randn(6, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    objective = Objective(tau=0.1, lambda_rec=1e-2)
    accumulated_step(module, x, labels, objective, chunk_size=4)
    reference = _grads(module)
    module.zero_grad(set_to_none=True)
    scaler = torch.amp.GradScaler("cpu", init_scale=8.0)
    accumulated_step(module, x, labels, objective, chunk_size=4, scaler=scaler)
    for name, g in _grads(module).items():
        torch.testing.assert_close(g, 8.0 * reference[name], rtol=1e-5, atol=1e-7, msg=name)


def test_accumulation_under_autocast_follows_the_full_batch_step():
    net = build_model(ModelConfig(input_size=32), seed=3)
    module = TrainModule(net)
    x = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    labels = torch.arange(4).repeat_interleave(2)
    objective = Objective(tau=0.1, lambda_rec=1e-2)

    def autocast():
        return torch.autocast("cpu", dtype=torch.bfloat16)

    plain = plain_step(module, x, labels, objective, autocast)
    reference = torch.cat([g.flatten() for g in _grads(module).values()])
    module.zero_grad(set_to_none=True)
    chunked = accumulated_step(module, x, labels, objective, 3, autocast)
    grads = torch.cat([g.flatten() for g in _grads(module).values()])
    assert torch.isfinite(grads).all()
    assert chunked.total == pytest.approx(plain.total, rel=2e-2)
    assert torch.nn.functional.cosine_similarity(grads, reference, dim=0) > 0.99
