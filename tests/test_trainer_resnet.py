"""The discriminative ResNet baseline: exact logit accumulation, training, fused evaluation.

ResNet-18 stands in for ResNet-50 to keep the tests fast: the same torchvision
design with the same group norm, which is what the exactness test is about.
"""

from __future__ import annotations

import json

import pytest
import torch

from trainer.cli import main
from trainer.resnet import build_resnet
from trainer.step import Objective, TrainModule, accumulated_step, plain_step
from trainer.synthetic import write_style_set


def test_group_norm_keeps_logit_accumulation_exact():
    module = TrainModule(build_resnet(32, seed=0, depth="resnet18"))
    x = torch.randn(6, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    objective = Objective(tau=0.1, lambda_rec=0.0)
    full = plain_step(module, x, labels, objective)
    reference = {n: p.grad.clone() for n, p in module.named_parameters()}
    module.zero_grad(set_to_none=True)
    chunked = accumulated_step(module, x, labels, objective, chunk_size=4)
    assert chunked.total == full.total or abs(chunked.total - full.total) < 1e-5 * abs(full.total)
    for name, p in module.named_parameters():
        scale = reference[name].abs().max().item()
        torch.testing.assert_close(p.grad, reference[name], rtol=1e-3, atol=1e-4 * scale + 1e-8, msg=name)


@pytest.mark.usefixtures("training_torch")
def test_resnet_baseline_trains_and_fuses_with_aladin(tmp_path, capsys):
    data = write_style_set(tmp_path / "data", groups=12, per_group=4, size=36, seed=3)
    run = tmp_path / "rn"
    assert main(["train", "--arch", "resnet18", "--data", str(data), "--out", str(run), "--input-size", "32",
                 "--groups-per-batch", "3", "--steps", "1", "--eval-every", "0", "--patience", "0",
                 "--val", "0.25", "--workers", "0", "--tensorboard", "off"]) == 0
    state = torch.load(run / "last.pt", weights_only=True)
    assert state["model_config"] == {"arch": "resnet", "variant": "resnet18", "input_size": 32}
    assert state["config"]["lambda_rec"] == 0.0
    report = tmp_path / "fused.json"
    assert main(["eval", "--data", str(data), "--model", "untrained-s", "--input-size", "32",
                 "--fuse-with", str(run / "last.pt"), "--fuse-weight", "0.3", "--workers", "0",
                 "--report", str(report)]) == 0
    fused = json.loads(report.read_text())
    assert fused["fused_with"]["architecture"] == "resnet18" and fused["fused_with"]["weight"] == 0.3
    # By default only what the ResNet's run held out (a quarter of the 12 styles) is scored.
    assert fused["split"]["name"] == "val" and fused["metrics"]["queries"] == 12
    capsys.readouterr()
    assert main(["export", str(run / "last.pt"), str(tmp_path / "m.safetensors")]) == 2
    assert "not an app model" in capsys.readouterr().err
    assert main(["train", "--arch", "resnet18", "--lambda-rec", "0.01", "--data", str(data),
                 "--out", str(tmp_path / "x"), "--input-size", "32", "--groups-per-batch", "3", "--steps", "1",
                 "--workers", "0"]) == 2
    assert "no decoder" in capsys.readouterr().err
