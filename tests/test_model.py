"""The ALADIN network: AdaIN statistics, embedding sizes, reconstruction shape."""

from __future__ import annotations

import pytest
import torch

from core.model import Aladin, ModelConfig, adain, adain_stats, build_model


def test_adain_stats_match_hand_computation():
    x = torch.tensor([[[[1.0, 2.0], [3.0, 6.0]], [[0.0, 0.0], [0.0, 4.0]]]])
    mean, std = adain_stats(x)
    # channel 0: mean 3, population variance ((4+1+0+9)/4) = 3.5; channel 1: mean 1, var (1+1+1+9)/4 = 3
    assert torch.allclose(mean, torch.tensor([[3.0, 1.0]]))
    assert torch.allclose(std, torch.tensor([[3.5, 3.0]]).add(1e-5).sqrt())


def test_adain_transfers_statistics():
    torch.manual_seed(0)
    content = torch.randn(2, 3, 8, 8) * 5 + 2
    mean = torch.tensor([[0.5, -1.0, 3.0], [1.0, 2.0, 0.0]])
    std = torch.tensor([[2.0, 0.5, 1.5], [1.0, 3.0, 0.2]])
    out_mean, out_std = adain_stats(adain(content, mean, std))
    assert torch.allclose(out_mean, mean, atol=1e-4)
    assert torch.allclose(out_std, std, atol=1e-3)


@pytest.mark.parametrize("variant,size,dim", [("s", 64, 896), ("l", 32, 2 * (64 + 128 + 256 + 512 + 512))])
def test_embedding_and_reconstruction_shapes(variant, size, dim):
    config = ModelConfig(variant=variant, input_size=size)
    net = build_model(config, seed=1).eval()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        out = net(x)
    assert config.style_dim == dim
    assert out.style.shape == (2, dim)
    assert out.projection.shape == (2, 128)
    assert torch.allclose(out.projection.norm(dim=1), torch.ones(2), atol=1e-5)
    assert out.reconstruction.shape == x.shape


def test_style_code_layout_is_mean_then_std_per_layer():
    net = build_model(ModelConfig(input_size=32), seed=0).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        feats = net.style_encoder(x)
        code = net.style_code(x)
    first_mean, first_std = adain_stats(feats[0])
    assert torch.allclose(code[:, :64], first_mean)
    assert torch.allclose(code[:, 64:128], first_std)


def test_contrastive_only_forward_skips_decoder():
    net = build_model(ModelConfig(input_size=32), seed=0)
    calls = []
    net.decoder.register_forward_hook(lambda *a: calls.append("decoder"))
    net.content_encoder.register_forward_hook(lambda *a: calls.append("content"))
    out = net(torch.randn(2, 3, 32, 32), reconstruct=False)
    assert out.reconstruction is None and calls == []


def test_seeded_build_is_reproducible_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = build_model(ModelConfig(input_size=32), seed=7)
    after = torch.rand(1)
    b = build_model(ModelConfig(input_size=32), seed=7)
    assert torch.equal(before, after)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    assert isinstance(a, Aladin)


@pytest.mark.parametrize("kwargs", [{"variant": "x"}, {"input_size": 30}, {"input_size": 8}])
def test_bad_config_is_rejected(kwargs):
    with pytest.raises(ValueError):
        ModelConfig(**kwargs)
