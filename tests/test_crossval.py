"""Out-of-domain protocol: whole sources held out of training, eval on chosen sources, leave-one-source-out."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from trainer.cli import main, parse_args
from trainer.manifest import Sample, read_manifest, write_manifest
from trainer.synthetic import write_style_set
from trainer.train import Trainer

from conftest import deterministic_torch

# Every test here trains or evaluates a network: one torch thread and a fixed seed each.
pytestmark = pytest.mark.usefixtures("training_torch")

SOURCES = ("alpha", "beta", "gamma")
FOLD_TRAINING = ["--groups-per-batch", "2", "--steps", "2", "--eval-every", "0", "--patience", "0",
                 "--lambda-rec", "0", "--input-size", "32", "--tensorboard", "off", "--log-every", "1"]


@pytest.fixture(scope="module")
def sourced(tmp_path_factory):
    """Three sources of 5 styles x 3 images in 2 palettes (colour alone cannot sort them), groups named
    ``<source>/<style>`` as in the corpus."""
    root = tmp_path_factory.mktemp("sourced")
    rows = []
    for seed, source in enumerate(SOURCES):
        for s in read_manifest(write_style_set(root / source, groups=5, per_group=3, size=36, seed=seed, palettes=2)):
            rows.append(Sample(s.path, f"{source}/{s.group}", source=source))
    return write_manifest(root / "manifest.csv", rows)


@pytest.fixture(scope="module")
def folds(sourced, tmp_path_factory):
    """A leave-one-source-out run: three folds of two training steps each."""
    out = tmp_path_factory.mktemp("crossval")
    argv = ["crossval", "--data", str(sourced), "--out", str(out), "--workers", "0", "--", *FOLD_TRAINING]
    # Module fixtures run before the per-test user-folder isolation: keep the pixel cache in the test's folders.
    with pytest.MonkeyPatch.context() as env, deterministic_torch():
        env.setenv("ALADIN_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        assert main(argv) == 0
    return out, argv


def _train_argv(manifest, out, *extra):
    return ["train", "--data", str(manifest), "--out", str(out), "--workers", "0", *FOLD_TRAINING, *extra]


def test_held_out_sources_never_reach_training_batches(sourced, tmp_path, capsys):
    args = parse_args(_train_argv(sourced, tmp_path / "run", "--val-sources", "beta", "--test-sources", "gamma"))
    trainer = Trainer(args)
    batches = [trainer.sampler.global_batch(n) for n in range(3 * trainer.sampler.batches_per_epoch)]
    assert {trainer.dataset.samples[i].source for batch in batches for i, _ in batch} == {"alpha"}
    assert {s.source for s in trainer.val_samples} == {"beta"}, "validation runs on the held-out source"
    summary = trainer.fit()
    assert summary["holdout"] == {"val_sources": ["beta"], "test_sources": ["gamma"], "val_images": 15,
                                  "test_images": 15, "train_sources": ["alpha"]}
    assert summary["last_val"]["queries"] == 15
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (config["val_sources"], config["test_sources"]) == (["beta"], ["gamma"])

    swapped = _train_argv(sourced, tmp_path / "run", "--val-sources", "gamma", "--test-sources", "beta", "--resume")
    assert main(swapped) == 2
    assert "val_sources (['beta'] -> ['gamma'])" in capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [
    (["--val-sources", "delta"], "unknown source delta; the manifest's sources are alpha, beta, gamma"),
    (["--test-sources", "gamma"], "--test-sources needs --val-sources"),
    (["--val-sources", "beta", "--test-sources", "beta"], "both a validation and a test source"),
    (["--val-sources", "alpha,beta,gamma"], "leaves no training images"),
])
def test_bad_holdouts_are_one_line_errors(sourced, tmp_path, capsys, extra, message):
    assert main(_train_argv(sourced, tmp_path / "run", *extra)) == 2
    assert message in capsys.readouterr().err


def test_eval_sources_restricts_the_gallery(sourced, tmp_path, capsys):
    def report(*extra):
        path = tmp_path / "r.json"
        assert main(["eval", "--data", str(sourced), "--baseline", "colour", "--workers", "0",
                     "--report", str(path), *extra]) == 0
        return json.loads(path.read_text())

    two = report("--sources", "gamma,alpha")
    assert two["data"]["images"] == 30 and sorted(two["by_source"]) == ["alpha", "gamma"]
    per = two["by_source"]
    assert per["alpha"]["content_trap"] == {"share": None, "trapped": 0, "measurable": 0}
    assert two["source_mean"]["count"] == 2
    assert two["source_mean"]["P@1"] == pytest.approx((per["alpha"]["P@1"] + per["gamma"]["P@1"]) / 2)
    assert "unweighted mean over 2 sources" in capsys.readouterr().out

    alone = report("--sources", "alpha")
    assert alone["data"]["images"] == 15 and list(alone["by_source"]) == ["alpha"]
    assert alone["metrics"] == {k: v for k, v in alone["by_source"]["alpha"].items() if k != "content_trap"}
    whole = report()
    assert whole["data"]["images"] == 45
    assert main(["eval", "--data", str(sourced), "--baseline", "colour", "--sources", "omega"]) == 2
    assert "unknown source omega" in capsys.readouterr().err


def test_crossval_reports_every_fold_and_the_mean(folds):
    out, _ = folds
    report = json.loads((out / "report.json").read_text())
    assert report["mode"] == "train"
    rows = report["folds"]
    assert [(r["source"], r["val_source"]) for r in rows] == [("alpha", "beta"), ("beta", "gamma"),
                                                                ("gamma", "alpha")]
    for row in rows:
        config = json.loads((out / row["source"] / "config.json").read_text())
        assert config["test_sources"] == [row["source"]] and config["val_sources"] == [row["val_source"]]
        assert row["steps"] == 2 and row["checkpoint"] == "best.pt" and row["images"] == 15
        for subject in ("model", "colour", "untrained"):
            assert row[subject]["queries"] == 15 and 0 <= row[subject]["P@1"] <= row[subject]["P@10"] <= 1
    assert len({json.dumps(r["colour"]) for r in rows}) == 3, "each fold measured its own source"
    for subject in ("model", "colour", "untrained"):
        mean = report["mean"][subject]
        assert mean["count"] == 3
        for key in ("P@1", "P@5", "P@10", "mAP"):
            assert mean[key] == pytest.approx(np.mean([r[subject][key] for r in rows]))


def test_crossval_resumes_without_retraining(folds, sourced, monkeypatch, capsys):
    out, argv = folds
    before = json.loads((out / "report.json").read_text())
    # Interrupted while evaluating beta (trained, no figures), and while training gamma (a checkpoint only).
    (out / "beta" / "fold.json").unlink()
    (out / "gamma" / "fold.json").unlink()
    (out / "gamma" / "summary.json").unlink()
    fit = Trainer.fit
    trained = []

    def recording_fit(self):
        trained.append((Path(self.args.out).name, self.args.resume, self.step))
        return fit(self)

    monkeypatch.setattr(Trainer, "fit", recording_fit)
    assert main(argv) == 0
    assert trained == [("gamma", "auto", 2)], "only gamma trained, resumed from its last checkpoint"
    assert json.loads((out / "report.json").read_text()) == before
    assert "beta: evaluating model" in capsys.readouterr().err

    changed = [a if a != "32" else "40" for a in argv]
    assert main(changed) == 2
    assert "input_size (32 -> 40)" in capsys.readouterr().err


def test_crossval_of_an_existing_model_trains_nothing(folds, sourced, tmp_path):
    out, _ = folds
    checkpoint = out / "alpha" / "best.pt"
    assert main(["crossval", "--data", str(sourced), "--out", str(tmp_path), "--model", str(checkpoint),
                 "--sources", "alpha,gamma", "--workers", "0"]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["mode"] == "model" and [r["source"] for r in report["folds"]] == ["alpha", "gamma"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"], "no fold was trained"
    trained = {r["source"]: r for r in json.loads((out / "report.json").read_text())["folds"]}
    # The same checkpoint on the same source is the same figure, whichever mode measured it.
    assert report["folds"][0]["model"] == trained["alpha"]["model"]
    assert report["folds"][1]["colour"] == trained["gamma"]["colour"]
    assert report["mean"]["untrained"]["count"] == 2
