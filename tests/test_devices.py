"""The same checks on every device this machine has: the CPU always, CUDA where present.

The CUDA paths differ from the CPU ones (mixed precision, pinned memory, the
AMP grad scaler), so they must meet the CPU float32 results, not just run.
On a machine without a GPU these run on the CPU only; the GPU session
(``bench/gpu_session.sh``) runs them where CUDA exists.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from core.embedder import Embedder
from core.model import ModelConfig, build_model
from core.modelfile import LoadedModel, ModelInfo
from trainer.checkpoint import load_checkpoint
from trainer.cli import main
from trainer.step import Objective, TrainModule, accumulated_step, plain_step
from trainer.synthetic import write_style_set

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _pixels(n: int, size: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (n, 1, 1, 3))
    noise = rng.integers(-60, 60, (n, size, size, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("which", ["style", "projection"])
def test_embedding_on_each_device_matches_cpu_float32(device, which):
    info = ModelInfo(name="tiny", config=ModelConfig(input_size=48))
    pixels = _pixels(6, 48)
    reference = Embedder(LoadedModel(build_model(info.config, seed=3), info, None, "test", ""), "cpu", which)
    candidate = Embedder(LoadedModel(build_model(info.config, seed=3), info, None, "test", ""), device, which)
    want = reference.finish(reference.raw_from_pixels(pixels))
    got = candidate.finish(candidate.raw_from_pixels(pixels))
    assert got.dtype == np.float32 and got.shape == want.shape
    # float16 autocast on CUDA: the same direction, not the same bits.
    cosine = (got * want).sum(axis=1)
    assert cosine.min() > 0.999, cosine


def _grads(net) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().float().cpu().clone() for n, p in net.named_parameters() if p.grad is not None}


@pytest.fixture
def exact_float32(monkeypatch):
    """CUDA convolutions and matmuls may use TF32 (10-bit mantissa) by default; equality checks need float32."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    yield
    torch.set_float32_matmul_precision(previous)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("lambda_rec", [0.0, 1e-2])
def test_logit_accumulation_equals_the_full_batch_on_each_device(device, lambda_rec, exact_float32):
    torch.manual_seed(0)
    x = torch.randn(12, 3, 32, 32, device=device)
    labels = torch.arange(6, device=device).repeat_interleave(2)
    objective = Objective(tau=0.1, lambda_rec=lambda_rec)
    results = []
    for step in (lambda m: plain_step(m, x, labels, objective),
                 lambda m: accumulated_step(m, x, labels, objective, chunk_size=5)):
        net = build_model(ModelConfig(input_size=32), seed=1).to(device).train()
        losses = step(TrainModule(net))
        results.append((losses, _grads(net)))
    (plain, g_plain), (acc, g_acc) = results
    assert acc.total == pytest.approx(plain.total, rel=1e-4, abs=1e-5)
    assert g_plain.keys() == g_acc.keys() and g_plain
    for name, grad in g_plain.items():
        torch.testing.assert_close(g_acc[name], grad, rtol=1e-3, atol=1e-5,
                                   msg=lambda text, name=name: f"{name}: {text}")


# On the CPU, fp16 checks the fallback to float32; CUDA runs every precision.
RUNS = [("cpu", "off"), ("cpu", "fp16")] + [("cuda", amp) for amp in ("off", "bf16", "fp16") if "cuda" in DEVICES]


@pytest.mark.parametrize(("device", "amp"), RUNS)
def test_training_runs_and_resumes_on_each_device(device, amp, tmp_path):
    data = write_style_set(tmp_path / "data", groups=12, per_group=4, size=36, seed=2)
    out = tmp_path / "run"
    argv = ["train", "--data", str(data), "--out", str(out), "--input-size", "32", "--groups-per-batch", "4",
            "--chunk-size", "4", "--steps", "3", "--eval-every", "0", "--patience", "0", "--val", "0.25",
            "--workers", "0", "--tensorboard", "off", "--log-every", "1", "--device", device, "--amp", amp]
    assert main(argv) == 0
    rows = [json.loads(r) for r in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss/total"] for r in rows if "loss/total" in r]
    assert len(losses) == 3 and all(np.isfinite(losses))
    assert ("cuda_peak_mb" in rows[0]) == (device == "cuda")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["last_val"]["queries"] > 0
    # A checkpoint written on a GPU loads on a machine without one.
    state = load_checkpoint(out / "last.pt")
    assert all(t.device.type == "cpu" for t in state["model"].values())
    # Only float16 on CUDA needs (and checkpoints) a grad scaler; on the CPU --amp falls back to float32.
    assert (state["scaler"] is not None) == (device == "cuda" and amp == "fp16")
    argv[argv.index("--steps") + 1] = "5"
    assert main(argv + ["--resume"]) == 0
    assert load_checkpoint(out / "last.pt")["step"] == 5
