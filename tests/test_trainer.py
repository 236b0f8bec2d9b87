"""The trainer end to end on tiny synthetic styles: data, training, resume, eval, export, import."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core.modelfile import load_model_file
from trainer.cli import main, parse_args
from trainer.data import augment, collate, second_view
from trainer.errors import DataError
from trainer.manifest import Sample, at_consensus, data_card_id, read_manifest, write_manifest
from trainer.metrics import retrieval_metrics
from trainer.splits import split_by_group
from trainer.synthetic import style_set, write_style_set
from trainer.train import Trainer

from conftest import deterministic_torch

# Every test here trains or evaluates a network: one torch thread and a fixed seed each.
pytestmark = pytest.mark.usefixtures("training_torch")

TINY = ["--input-size", "32", "--workers", "0", "--tensorboard", "off", "--log-every", "1"]


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """24 styles x 4 images, 36 px: enough for batches of 3 groups and a validation split."""
    return write_style_set(tmp_path_factory.mktemp("synth"), groups=24, per_group=4, size=36, seed=1)


@pytest.fixture(scope="module")
def trained(synth, tmp_path_factory):
    """A 4-step run with logit accumulation and the reconstruction term."""
    out = tmp_path_factory.mktemp("run")
    argv = ["train", "--data", str(synth), "--out", str(out), "--groups-per-batch", "3", "--chunk-size", "4",
            "--steps", "4", "--checkpoint-every", "2", "--eval-every", "0", "--patience", "0", "--val", "0.25",
            *TINY]
    with deterministic_torch():
        assert main(argv) == 0
    return out, argv


# -- data ---------------------------------------------------------------------------------------------


def test_manifest_csv_resolves_relative_paths_and_consensus(tmp_path):
    (tmp_path / "a.png").write_bytes(b"")
    (tmp_path / "m.csv").write_text("path,group,consensus\na.png,g1,3\nsub/b.png,g1,4\n/abs/c.png,g2,\n")
    samples = read_manifest(tmp_path / "m.csv")
    assert samples[0] == Sample(str(tmp_path / "a.png"), "g1", 3)
    assert samples[2] == Sample("/abs/c.png", "g2", None)
    with pytest.raises(DataError, match="several consensus levels"):
        at_consensus(samples, None)
    assert [s.path for s in at_consensus(samples, 4)] == [str(tmp_path / "sub/b.png")]
    write_manifest(tmp_path / "copy.csv", samples)
    assert read_manifest(tmp_path / "copy.csv") == samples


def test_folder_tree_is_one_group_per_sub_folder(tmp_path):
    for group, names in {"inks": ["a.png", "deep/b.jpg"], "oils": ["c.png"]}.items():
        for name in names:
            path = tmp_path / group / name
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (8, 8)).save(path)
    (tmp_path / "inks" / "notes.txt").write_text("not an image")
    samples = read_manifest(tmp_path)
    assert sorted((s.group, s.path.rsplit("/", 1)[1]) for s in samples) == [
        ("inks", "a.png"), ("inks", "b.jpg"), ("oils", "c.png")]


def test_manifest_problems_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="manifest not found"):
        read_manifest(tmp_path / "nope.csv")
    (tmp_path / "bad.csv").write_text("file,label\nx.png,1\n")
    with pytest.raises(DataError, match="lacks path, group"):
        read_manifest(tmp_path / "bad.csv")


def test_data_card_id_pins_the_file_list(tmp_path):
    manifest = write_manifest(tmp_path / "m.csv", [Sample("a.png", "g1"), Sample("b.png", "g1")])
    plain = data_card_id(manifest)
    assert plain.startswith("manifest:m.csv:")
    write_manifest(manifest, [Sample("a.png", "g1"), Sample("b.png", "g2")])
    assert data_card_id(manifest) != plain
    (tmp_path / "sources.json").write_text("{}")
    assert data_card_id(manifest).startswith(f"corpus {tmp_path.name} (resources/models/DATA.md), manifest ")
    (tmp_path / "datacard.json").write_text(json.dumps({"id": "my-card-v2"}))
    assert data_card_id(manifest) == "my-card-v2"


def test_split_is_by_group_disjoint_and_seeded():
    samples = [Sample(f"{g}-{i}.png", f"g{g}") for g in range(50) for i in range(3)]
    split = split_by_group(samples, val=0.2, test=0.1, seed=4)
    groups = [{s.group for s in part} for part in (split.train, split.val, split.test)]
    assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])
    assert (len(groups[1]), len(groups[2])) == (10, 5)
    assert split_by_group(list(reversed(samples)), 0.2, 0.1, 4).val[0].group in groups[1], "row order is irrelevant"
    assert {s.group for s in split_by_group(samples, 0.2, 0.1, 5).val} != groups[1]


def test_synthetic_groups_share_style_while_content_varies():
    images, labels = style_set(6, 3, size=48, seed=2)
    again, _ = style_set(6, 3, size=48, seed=2)
    assert np.array_equal(images, again), "seeded"
    assert labels.tolist() == [g for g in range(6) for _ in range(3)]
    assert not np.array_equal(images[0], images[1]), "content differs within a group"
    # Colour statistics agree more within a group than across groups.
    means = images.reshape(18, -1, 3).mean(1)
    within = np.mean([np.linalg.norm(means[3 * g] - means[3 * g + 1]) for g in range(6)])
    across = np.mean([np.linalg.norm(means[3 * g] - means[3 * (g + 1) % 18]) for g in range(5)])
    assert within < across


def test_second_view_rescales_a_crop_and_never_touches_colour():
    flat = np.full((36, 36, 3), (200, 30, 90), np.uint8)
    assert (second_view(flat, 32, seed=4) == (200, 30, 90)).all(), "no colour jitter"
    # A horizontal ramp of 7 levels per pixel: a view at scale s has slope 7 * s, and 0.79 <= s <= 1.125.
    ramp = np.repeat(np.repeat((np.arange(36) * 7)[None, :, None], 36, 0), 3, 2).astype(np.uint8)
    views = [second_view(ramp, 32, seed) for seed in range(12)]
    assert all(v.shape == (32, 32, 3) and v.dtype == np.uint8 for v in views)
    assert np.array_equal(views[0], second_view(ramp, 32, 0)), "seeded by the batch"
    slopes = [np.abs(np.diff(v[16, 4:28, 0].astype(float))).mean() for v in views]
    assert all(5.3 < s < 8.0 for s in slopes), slopes
    assert max(slopes) - min(slopes) > 0.5, "the scale varies"
    assert not np.array_equal(views[3], augment(ramp, 32, 3)), "the second view differs from the first"


def test_retrieval_metrics_match_hand_values():
    # Unit vectors at angles 0, 50, 30, 90, 200 degrees, groups a a b b c (c cannot be scored).
    # By angle: q0 -> 2, 1 (first hit at rank 2); q1 -> 2, 3, 0 (rank 3); q2 -> 1, 0 (rank 3 for b:
    # 1, 0, 3); q3 -> 1, 2 (rank 2). One relevant item each, so AP = 1 / rank.
    angles = np.radians([0, 50, 30, 90, 200])
    v = np.stack([np.cos(angles), np.sin(angles)], 1).astype(np.float32)
    m = retrieval_metrics(v, np.array(list("aabbc")), ks=(1, 2, 3))
    assert m["queries"] == 4 and m["unscorable_queries"] == 1
    assert (m["P@1"], m["P@2"], m["P@3"]) == (0.0, 0.5, 1.0)
    assert m["mAP"] == pytest.approx((1 / 2 + 1 / 3 + 1 / 3 + 1 / 2) / 4)


# -- training -----------------------------------------------------------------------------------------


def test_training_writes_checkpoints_metrics_and_summary(trained):
    out, _ = trained
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows if "loss/total" in r]
    assert steps == [1, 2, 3, 4]
    assert all(r["loss/reconstruction"] > 0 for r in rows if "loss/total" in r)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 4 and summary["last_val"]["queries"] > 0
    state = torch.load(out / "last.pt", weights_only=True)
    assert state["step"] == 4 and state["sampler"]["next_batch"] == 4
    assert {"model", "optimizer", "scheduler", "config"} <= state.keys()


def test_resume_continues_identically(trained, tmp_path):
    out, argv = trained
    half = list(argv)
    half[half.index(str(out))] = str(tmp_path)
    half[half.index("--steps") + 1] = "2"
    assert main(half) == 0
    rest = list(half)
    rest[rest.index("--steps") + 1] = "4"
    assert main(rest + ["--resume"]) == 0
    straight = torch.load(out / "last.pt", weights_only=True)
    resumed = torch.load(tmp_path / "last.pt", weights_only=True)
    assert resumed["step"] == 4
    for name, tensor in straight["model"].items():
        assert torch.equal(resumed["model"][name], tensor), name
    first = [json.loads(r) for r in (out / "metrics.jsonl").read_text().splitlines()]
    second = [json.loads(r) for r in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    loss = lambda rows: [r["loss/total"] for r in rows if "loss/total" in r]  # noqa: E731
    assert loss(second) == loss(first)


def test_resume_refuses_changed_data_stream(trained, tmp_path, capsys):
    out, argv = trained
    changed = list(argv)
    changed[changed.index("--groups-per-batch") + 1] = "2"
    assert main(changed + ["--resume", str(out / "last.pt")]) == 2
    assert "groups_per_batch" in capsys.readouterr().err


def test_lambda_zero_never_runs_the_reconstruction_branch(synth, tmp_path, monkeypatch):
    args = parse_args(["train", "--data", str(synth), "--out", str(tmp_path), "--groups-per-batch", "3",
                       "--steps", "1", "--lambda-rec", "0", "--eval-every", "0", "--patience", "0", *TINY])
    trainer = Trainer(args)
    optimised = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert not any(id(p) in optimised for p in trainer.net.content_encoder.parameters())
    assert not any(id(p) in optimised for p in trainer.net.decoder.parameters())

    def forbidden(*_):
        raise AssertionError("decoder ran with --lambda-rec 0")

    monkeypatch.setattr(trainer.net.decoder, "forward", forbidden)
    monkeypatch.setattr(trainer.net.content_encoder, "forward", forbidden)
    assert trainer.fit()["steps"] == 1


def test_training_on_evaluation_only_art_is_warned_of(synth, tmp_path, caplog):
    samples = read_manifest(synth)
    first = samples[0].group
    moved = []
    for sample in samples:  # one style's images moved under a dingbat font's folder name
        if sample.group == first:
            target = tmp_path / "fonts" / "Line_Dings_BRK" / Path(sample.path).name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(Path(sample.path).read_bytes())
            sample = Sample(str(target), sample.group)
        moved.append(sample)
    flagged = write_manifest(tmp_path / "flagged.csv", moved)
    argv = ["--groups-per-batch", "3", "--steps", "1", "--lambda-rec", "0", "--eval-every", "0", "--patience", "0",
            "--val", "0", *TINY]
    with caplog.at_level("WARNING"):
        Trainer(parse_args(["train", "--data", str(flagged), "--out", str(tmp_path / "a"), *argv]))
    assert "4 training images look reserved for evaluation" in caplog.text and "Line_Dings_BRK" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        Trainer(parse_args(["train", "--data", str(synth), "--out", str(tmp_path / "b"), *argv]))
    assert "reserved" not in caplog.text


def test_max_minutes_stops_with_a_validated_checkpoint(synth, tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--data", str(synth), "--out", str(out), "--groups-per-batch", "3", "--steps", "100000",
                 "--max-minutes", "0.0001", "--eval-every", "0", "--patience", "0", "--lambda-rec", "0",
                 *TINY]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 1 and summary["last_val"]["queries"] > 0
    assert torch.load(out / "last.pt", weights_only=True)["step"] == 1


@pytest.mark.slow
def test_short_training_raises_validation_p1_above_untrained(tmp_path):
    # Two shared palettes: colour alone cannot separate the 40 validation styles, so the
    # untrained network scores low and training has something to learn.
    data = write_style_set(tmp_path / "data", groups=100, per_group=4, size=36, seed=7, palettes=2)
    out = tmp_path / "run"
    assert main(["train", "--data", str(data), "--out", str(out), "--groups-per-batch", "12", "--steps", "40",
                 "--eval-every", "0", "--val", "0.4", "--lambda-rec", "0", "--lr", "1e-3", *TINY]) == 0
    summary = json.loads((out / "summary.json").read_text())
    before, after = summary["first_val"], summary["last_val"]
    assert before["queries"] == 160
    # mAP ranks every validation image, so it moves steadily where P@1 over 160 queries jumps in steps of
    # 0.006 (one thread: P@1 0.325 -> 0.381, mAP 0.332 -> 0.416).
    assert after["mAP"] >= before["mAP"] + 0.05, (before, after)
    assert after["P@1"] > before["P@1"], (before, after)


# -- eval, export, fine-tuning --------------------------------------------------------------------------


def test_export_writes_an_app_model_file(trained, synth, tmp_path):
    out, _ = trained
    model_path = tmp_path / "model.safetensors"
    assert main(["export", str(out / "last.pt"), str(model_path), "--workers", "0"]) == 0
    model = load_model_file(model_path)
    assert model.info.trained and model.info.embedding == "style" and model.info.config.input_size == 32
    assert model.info.training_data == data_card_id(synth)
    assert model.post is not None and model.post.mean.shape == (model.net.config.style_dim,)
    assert model.info.notes["step"] == 4
    projection = tmp_path / "projection.safetensors"
    assert main(["export", str(out / "last.pt"), str(projection), "--embedding", "projection",
                 "--no-standardise"]) == 0
    plain = load_model_file(projection)
    assert plain.info.embedding == "projection" and plain.post is None


def test_eval_reports_model_baseline_and_fused(trained, synth, tmp_path):
    out, _ = trained
    model_path = tmp_path / "model.safetensors"
    assert main(["export", str(out / "last.pt"), str(model_path), "--workers", "0"]) == 0
    reports = {}
    # The run's validation split, planned again here, for every subject: the model never trained on it.
    held_out = ["--split", "val", "--val", "0.25"]
    for name, extra in {"model": ["--model", str(model_path)],
                        "untrained": ["--model", "untrained-s", "--input-size", "32"],
                        "colour": ["--baseline", "colour"],
                        "fused": ["--model", str(model_path), "--colour-weight", "0.3"]}.items():
        report = tmp_path / f"{name}.json"
        assert main(["eval", "--data", str(synth), "--workers", "0", "--report", str(report), *held_out,
                     *extra]) == 0
        reports[name] = json.loads(report.read_text())
    assert reports["model"]["standardisation"] == "from the model file"
    assert reports["untrained"]["standardisation"] == "fitted on the evaluation set's codes"
    assert reports["untrained"]["model"]["trained"] is False
    assert reports["untrained"]["model"]["input_size"] == 32
    assert reports["fused"]["model"]["colour_weight"] == 0.3
    for r in reports.values():
        assert r["data"]["images"] == 24 and r["metrics"]["queries"] == 24
        assert 0 < r["metrics"]["P@1"] <= 1 and r["metrics"]["P@10"] >= r["metrics"]["P@1"]
    assert reports["fused"]["metrics"] != reports["model"]["metrics"]


def test_finetune_on_a_folder_of_groups(trained, synth, tmp_path):
    out, _ = trained
    run = tmp_path / "ft"
    assert main(["finetune", "--from", str(out / "last.pt"), "--data", str(synth.parent), "--out", str(run),
                 "--groups-per-batch", "3", "--steps", "2", "--eval-every", "0", "--patience", "0",
                 "--val", "0.25", "--lambda-rec", "0", *TINY]) == 0
    state = torch.load(run / "last.pt", weights_only=True)
    start = torch.load(out / "last.pt", weights_only=True)
    assert state["config"]["lr"] == 1e-5
    key = "style_encoder.layers.0.0.weight"
    assert not torch.equal(state["model"][key], start["model"][key]), "fine-tuning moved the weights"
    assert torch.equal(state["model"]["decoder.to_rgb.weight"], start["model"]["decoder.to_rgb.weight"])


# -- the command line ----------------------------------------------------------------------------------


def test_cli_known_errors_are_one_line(tmp_path, capsys):
    assert main(["eval", "--data", str(tmp_path / "missing.csv"), "--baseline", "colour"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "manifest not found" in err[0]


@pytest.mark.parametrize("cache", ["auto", "off"])
def test_a_corrupt_training_image_is_left_out_not_fatal(synth, tmp_path, cache):
    samples = read_manifest(synth)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    samples[0] = Sample(str(broken), samples[0].group)
    manifest = write_manifest(tmp_path / "m.csv", samples)
    args = parse_args(["train", "--data", str(manifest), "--out", str(tmp_path / "run"), "--groups-per-batch", "3",
                       "--steps", "2", "--lambda-rec", "0", "--eval-every", "0", "--patience", "0",
                       "--val", "0.25", "--cache", cache, *TINY])
    trainer = Trainer(args)
    assert str(broken) in {s.path for s in trainer.split.train}, "seed 0 puts style0000 in training"
    if cache == "auto":
        assert str(broken) in trainer.cache.failed
        assert str(broken) not in {s.path for s in trainer.train_samples}
    else:
        index = [s.path for s in trainer.dataset.samples].index(str(broken))
        image, group = trainer.dataset[(index, 1)]
        assert image.shape == (3, 32, 32), "a group-mate stands in for the unreadable file"
    assert trainer.fit()["steps"] == 2


def test_self_supervised_views_train_with_accumulation_reconstruction_and_singles(synth, tmp_path):
    samples = read_manifest(synth)
    # The first style's four images become four groups of one: only their second views give them positives.
    first = samples[0].group
    solo = [Sample(s.path, f"solo{k}") for k, s in enumerate(s for s in samples if s.group == first)]
    manifest = write_manifest(tmp_path / "m.csv", solo + [s for s in samples if s.group != first])
    argv = ["train", "--data", str(manifest), "--out", str(tmp_path / "run"), "--groups-per-batch", "3",
            "--chunk-size", "4", "--steps", "2", "--eval-every", "0", "--patience", "0", "--val", "0.25",
            "--ssl-weight", "0.5", "--singles-per-batch", "2", *TINY]
    trainer = Trainer(parse_args(argv))
    images, labels, views = collate([trainer.dataset[item] for item in trainer.sampler.local_batch(0)])
    assert images.shape == views.shape == (8, 3, 32, 32)
    solo_ids = {trainer.dataset.group_ids[g] for g in trainer.dataset.groups if g.startswith("solo")}
    assert set(labels[6:].tolist()) <= solo_ids and labels[6] != labels[7], "two singles after the pairs"
    assert trainer.fit()["steps"] == 2
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    for row in (r for r in rows if "loss/total" in r):
        assert row["loss/ssl"] > 0 and row["loss/reconstruction"] > 0
        assert row["loss/total"] == pytest.approx(row["loss/contrastive"] + 1e-2 * row["loss/reconstruction"]
                                                  + 0.5 * row["loss/ssl"], rel=1e-5)


def test_a_checkpoint_without_its_training_record_is_split_again_by_the_sources_it_held_out(tmp_path):
    """A run that held whole sources out, slimmed of its record (bench/lease_checkpoints.py before it kept it),
    still exports: its training images are the rows of the other sources, not a project split of None."""
    from trainer.export import training_paths
    rows = [Sample(path=f"{source}-{g}-{i}.png", group=f"{source}/{g}", source=source)
            for source in ("seen", "unseen") for g in range(3) for i in range(2)]
    manifest = write_manifest(tmp_path / "m.csv", rows)
    config = {"data": str(manifest), "val_sources": ["unseen"], "test_sources": None, "val": None, "test": None,
              "split_seed": None}
    paths = training_paths({"config": config}, None)
    assert sorted(Path(p).name for p in paths) == sorted(r.path for r in rows if r.source == "seen")
