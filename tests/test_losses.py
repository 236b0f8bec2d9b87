"""Eq. 2 and the two-view term against hand computations, and logit accumulation against a plain full-batch step."""

from __future__ import annotations

import math

import pytest
import torch

from core.model import ModelConfig, build_model
from trainer.losses import contrastive_loss, reconstruction_error, view_loss
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


def test_view_loss_matches_hand_computation():
    # Images 0-3 in groups a a b b, each with a second view; 8 rows [z; views].
    z = torch.nn.functional.normalize(torch.randn(4, 3, generator=torch.Generator().manual_seed(0)), dim=1)
    views = torch.nn.functional.normalize(z + 0.3 * torch.randn(4, 3, generator=torch.Generator().manual_seed(1)),
                                          dim=1)
    labels = torch.tensor([0, 0, 1, 1])
    tau = 0.5
    rows = torch.cat([z, views])
    image, group = [0, 1, 2, 3] * 2, [0, 0, 1, 1] * 2
    expected = 0.0
    for a in range(8):
        positive = math.exp(float(rows[a] @ rows[(a + 4) % 8]) / tau)
        # Negatives: rows of the other group only; the same group's other image is neither.
        negatives = sum(math.exp(float(rows[a] @ rows[n]) / tau) for n in range(8) if group[n] != group[a])
        assert sum(1 for n in range(8) if image[n] == image[a] and n != a) == 1
        expected += -math.log(positive / negatives)
    assert view_loss(z, views, labels, tau).item() == pytest.approx(expected / 8, rel=1e-5)


def test_view_loss_gives_images_without_a_group_mate_a_positive():
    z = torch.eye(3)
    singles = torch.tensor([0, 1, 2])
    with pytest.raises(ValueError):
        contrastive_loss(z, singles)
    assert view_loss(z, z, singles) < view_loss(z, z.roll(1, dims=0), singles)


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
    _assert_same_grads(accumulated, reference)


def _assert_same_grads(accumulated, reference):
    assert accumulated.keys() == reference.keys()
    for name, g in reference.items():
        # float32 tolerance: chunked convolutions sum in a different order than the full batch.
        scale = g.abs().max().item()
        torch.testing.assert_close(accumulated[name], g, rtol=1e-3, atol=1e-4 * scale + 1e-8, msg=name)


@pytest.mark.usefixtures("training_torch")
def test_logit_accumulation_with_second_views_equals_full_batch():
    # With the reconstruction term: views replay without the decoder, images with it.
    lambda_rec = 1e-2
    net = build_model(ModelConfig(input_size=32), seed=4)
    module = TrainModule(net)
    g = torch.Generator().manual_seed(2)
    x, views = torch.randn(7, 3, 32, 32, generator=g), torch.randn(7, 3, 32, 32, generator=g)
    # Two pairs and three images alone in their group: those learn from their views only.
    labels = torch.tensor([0, 0, 1, 1, 2, 3, 4])
    objective = Objective(tau=0.1, lambda_rec=lambda_rec, ssl_weight=0.5)

    full = plain_step(module, x, labels, objective, views=views)
    reference = _grads(module)
    module.zero_grad(set_to_none=True)
    chunked = accumulated_step(module, x, labels, objective, chunk_size=3, views=views)

    assert full.ssl > 0 and chunked.ssl == pytest.approx(full.ssl, rel=1e-5)
    assert chunked.total == pytest.approx(full.total, rel=1e-5)
    assert full.total == pytest.approx(full.contrastive + lambda_rec * full.reconstruction + 0.5 * full.ssl,
                                       rel=1e-5)
    _assert_same_grads(_grads(module), reference)
    module.zero_grad(set_to_none=True)
    plain_step(module, x, labels, Objective(tau=0.1, lambda_rec=lambda_rec))
    without = _grads(module)
    assert not torch.allclose(without["net.head.net.0.weight"], reference["net.head.net.0.weight"]), \
        "the views change the gradient"


def test_steps_refuse_views_that_do_not_match_the_objective():
    module = TrainModule(build_model(ModelConfig(input_size=32), seed=0))
    x, labels = torch.randn(4, 3, 32, 32), torch.tensor([0, 0, 1, 1])
    with pytest.raises(ValueError, match="second views"):
        plain_step(module, x, labels, Objective(tau=0.1, lambda_rec=0.0, ssl_weight=1.0))
    with pytest.raises(ValueError, match="second views"):
        accumulated_step(module, x, labels, Objective(tau=0.1, lambda_rec=0.0), 2, views=x)


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
