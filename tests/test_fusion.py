"""Fusing the texture descriptor from the trainer's side: eval's options, and re-exporting a model file."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from core.model import ModelConfig, build_model
from core.modelfile import ModelInfo, load_model_file, save_model
from tests.test_texture import _strokes
from trainer.cli import main
from trainer.manifest import Sample, write_manifest


@pytest.fixture
def line_styles(tmp_path):
    """Two line styles (hard and blurred strokes), each drawing the same six pictures on six tinted papers.

    The paper's tint is the picture's, not the style's: by colour a picture's nearest is itself in the other style.
    """
    tints = np.random.default_rng(1).uniform(0.3, 1.0, (6, 3))
    rows = []
    for style, soft in (("hard", False), ("soft", True)):
        for seed in range(6):
            path = tmp_path / f"{style}-{seed}.png"
            Image.fromarray((_strokes(seed, soft) * tints[seed]).astype(np.uint8)).save(path)
            rows.append(Sample(str(path), style, source="generated", content=f"drawing{seed}"))
    return write_manifest(tmp_path / "lines.csv", rows)


@pytest.fixture
def tiny_model(tmp_path):
    info = ModelInfo(name="tiny", config=ModelConfig(input_size=32), embedding="projection")
    return save_model(tmp_path / "tiny.safetensors", build_model(info.config, seed=5), info)


def _map(report) -> float:
    return json.loads(report.read_text())["metrics"]["mAP"]


def test_eval_fuses_texture_at_the_cue_size_and_finds_the_line_style(line_styles, tiny_model, tmp_path):
    torch.manual_seed(0)
    common = ["eval", "--data", str(line_styles), "--split", "all", "--model", str(tiny_model), "--workers", "0"]
    assert main(common + ["--colour-weight", "0.9", "--report", str(tmp_path / "colour.json")]) == 0
    assert main(common + ["--texture-weight", "0.9", "--cue-size", "64", "--report", str(tmp_path / "fused.json")]) == 0
    fused = json.loads((tmp_path / "fused.json").read_text())
    assert fused["model"]["texture_weight"] == 0.9
    assert (fused["model"]["input_size"], fused["model"]["decode_size"]) == (32, 64)
    assert "fused with texture (w=0.9) from 64 px" in fused["subject"]
    assert _map(tmp_path / "fused.json") > 0.9
    assert _map(tmp_path / "fused.json") > _map(tmp_path / "colour.json") + 0.2


def test_eval_takes_the_colour_histograms_bins_from_the_flag(line_styles, tiny_model, tmp_path, capsys):
    common = ["eval", "--data", str(line_styles), "--split", "all", "--model", str(tiny_model), "--workers", "0",
              "--colour-weight", "0.5"]
    for bins in ("12,4,4", "8,8,8"):
        assert main(common + ["--colour-bins", bins, "--report", str(tmp_path / f"{bins}.json")]) == 0
    coarse, fine = (json.loads((tmp_path / f"{bins}.json").read_text()) for bins in ("12,4,4", "8,8,8"))
    assert (coarse["model"]["colour_bins"], fine["model"]["colour_bins"]) == ([12, 4, 4], [8, 8, 8])
    assert coarse["metrics"] != fine["metrics"]
    with pytest.raises(SystemExit) as exit_info:
        main(common + ["--colour-bins", "8,eight,8"])
    assert exit_info.value.code == 2
    assert "expected three whole numbers such as 8,8,8, got '8,eight,8'" in capsys.readouterr().err


@pytest.mark.parametrize("options, message", [
    (["--baseline", "colour", "--texture-weight", "0.5"], "drop --baseline"),
    (["--texture-weight", "0.6", "--colour-weight", "0.5"], "must leave the network some weight"),
    (["--texture-weight", "0.6", "--pattern-weight", "0.4"], "must leave the network some weight"),
    (["--cue-size", "8"], "cue size must be"),
    (["--colour-bins", "8,8,8", "--baseline", "colour"], "drop --baseline"),
    (["--colour-weight", "0.5", "--colour-bins", "65,1,1"], "colour bins must be three whole numbers"),
    (["--colour-weight", "0.5", "--colour-bins", "8,8"], "colour bins must be three whole numbers"),
])
def test_eval_refuses_fusion_it_cannot_do(line_styles, tiny_model, options, message, capsys):
    model = [] if "--baseline" in options else ["--model", str(tiny_model)]
    assert main(["eval", "--data", str(line_styles), "--split", "all", "--workers", "0", *model, *options]) == 2
    assert message in capsys.readouterr().err


def test_export_writes_a_model_file_again_with_other_fusion_and_the_same_network(tiny_model, tmp_path, capsys):
    out = tmp_path / "retuned.safetensors"
    assert main(["export", str(tiny_model), str(out), "--texture-weight", "0.6", "--colour-weight", "0.1",
                 "--pattern-weight", "0.2", "--cue-size", "64", "--colour-bins", "8,8,8"]) == 0
    base, retuned = load_model_file(tiny_model), load_model_file(out)
    info = retuned.info
    assert (info.colour_weight, info.texture_weight, info.pattern_weight, info.cue_size) == (0.1, 0.6, 0.2, 64)
    assert info.colour_bins == (8, 8, 8) and base.info.colour_bins != (8, 8, 8)
    assert retuned.info.embedding == base.info.embedding and retuned.info.name == "tiny"
    assert retuned.info.notes["reexported_from"] == f"tiny.safetensors sha256 {base.checksum}"
    assert all(torch.equal(a, b) for a, b in zip(base.net.state_dict().values(), retuned.net.state_dict().values()))
    assert main(["export", str(tiny_model), str(tmp_path / "x.safetensors"), "--embedding", "style"]) == 2
    assert "only --name, --colour-weight" in capsys.readouterr().err
    assert main(["export", str(tiny_model), str(tmp_path / "y.safetensors"), "--texture-weight", "1.5"]) == 2
    assert "texture weight must be" in capsys.readouterr().err
    assert not (tmp_path / "x.safetensors").exists() and not (tmp_path / "y.safetensors").exists()
