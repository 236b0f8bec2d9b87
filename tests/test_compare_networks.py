"""bench/compare_networks.py: several networks scored on the same held-out sources at the same weights."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from PIL import Image

from bench.compare_networks import main, weights_argument
from library_fixtures import tiny_model_file
from trainer.manifest import Sample, write_manifest


@pytest.fixture
def two_sources(tmp_path):
    """Source "seen" and source "unseen", three groups of four images each. The images are noise with a faint
    tint per group: no descriptor is perfect on them, so two networks rank them differently."""
    rng = np.random.default_rng(0)
    rows = []
    for source, first in (("seen", 0), ("unseen", 3)):
        for group in range(first, first + 3):
            tint = rng.uniform(-2, 2, 3)
            for variant in range(4):
                path = tmp_path / "art" / source / f"{group}-{variant}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                noise = rng.uniform(0, 255, (40, 48, 3)) + tint
                Image.fromarray(np.clip(noise, 0, 255).astype(np.uint8)).save(path)
                rows.append(Sample(str(path), f"{source}/{group}", source=source))
    return write_manifest(tmp_path / "manifest.csv", rows)


def test_networks_are_compared_on_the_named_sources_only(two_sources, tmp_path, capsys):
    first = tiny_model_file(tmp_path / "models", seed=3)
    second = tiny_model_file(tmp_path / "models", seed=4)
    report = tmp_path / "compare.json"
    assert main([str(first), str(second), "--weights", "0.2,0.2,0.3,0.3", "--validation", str(two_sources),
                 "--sources", "unseen", "--cue-size", "32", "--workers", "0", "--report", str(report)]) == 0
    rows = json.loads(report.read_text())["models"]
    assert [r["checksum"] for r in rows] != [rows[0]["checksum"]] * 2
    for row in rows:
        assert (row["validation"]["images"], row["validation"]["sources"]) == (12, 1)
        for part in ("alone", "fused"):
            assert 0 <= row["validation"][part]["mAP"] <= 1 and 0 <= row["validation"][part]["P@1"] <= 1
    # Two random networks see the images differently, and fusing with the descriptors changes the ranking.
    assert rows[0]["validation"]["alone"]["mAP"] != rows[1]["validation"]["alone"]["mAP"]
    assert rows[0]["validation"]["alone"]["mAP"] != rows[0]["validation"]["fused"]["mAP"]
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 2 and all("criterion" in line for line in printed)
    assert main([str(first), "--weights", "0.2,0.2,0.3,0.3", "--validation", str(two_sources), "--cue-size", "32",
                 "--workers", "0", "--report", str(report)]) == 0
    assert json.loads(report.read_text())["models"][0]["validation"]["sources"] == 2


@pytest.mark.parametrize("bad", ["0.5,0.5", "0,0.3,0.3,0.4", "0.2,0.2,0.2,0.2", "a,b,c,d", "-0.1,0.5,0.3,0.3"])
def test_weights_must_be_four_summing_to_one_with_some_network(bad):
    with pytest.raises(argparse.ArgumentTypeError, match="four weights summing to 1"):
        weights_argument(bad)


def test_weights_are_read_in_order():
    assert weights_argument("0.025,0.055,0.22,0.7") == (0.025, 0.055, 0.22, 0.7)
