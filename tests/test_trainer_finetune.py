"""Fine-tuning keeps what the base model is; one project split for every consensus level, recorded with the run
and checked by eval; machine-readable progress; the paper's ablation switches."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from core.model import PROJECTION_DIM, ModelConfig, build_model
from core.modelfile import DEFAULT_MODEL, load_model_file
from trainer.cli import main, parse_args
from trainer.data import augment
from trainer.manifest import Sample, at_consensus, read_manifest, write_manifest
from trainer.splits import plan_by_project
from trainer.step import Objective, TrainModule, accumulated_step, plain_step
from trainer.synthetic import write_style_set
from trainer.train import Trainer

from conftest import deterministic_torch

pytestmark = pytest.mark.usefixtures("training_torch")

TINY = ["--input-size", "32", "--workers", "0", "--tensorboard", "off", "--log-every", "1"]
SHORT = ["--groups-per-batch", "3", "--eval-every", "0", "--patience", "0", *TINY]


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """12 styles x 4 images, 36 px."""
    return write_style_set(tmp_path_factory.mktemp("synth"), groups=12, per_group=4, size=36, seed=5)


@pytest.fixture(scope="module")
def run_with_test_split(synth, tmp_path_factory):
    """One step, a quarter of the styles held out for validation and a quarter for testing."""
    out = tmp_path_factory.mktemp("run")
    with pytest.MonkeyPatch.context() as env, deterministic_torch():
        env.setenv("ALADIN_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        assert main(["train", "--data", str(synth), "--out", str(out), "--steps", "1", "--val", "0.25",
                     "--test", "0.25", "--lambda-rec", "0", *SHORT]) == 0
    return out


def _finetune_bundled(synth, out, *extra):
    return main(["finetune", "--from", str(DEFAULT_MODEL), "--data", str(synth), "--out", str(out),
                 "--steps", "2", "--val", "0.25", *SHORT, *extra])


# -- 1. fine-tuning keeps what the base model is -----------------------------------------------------------


def test_finetune_of_the_bundled_model_exports_its_search_vector(synth, tmp_path):
    base = load_model_file(DEFAULT_MODEL)
    assert base.info.search_only and base.info.embedding == "projection" and base.info.colour_weight > 0
    assert base.info.reads_alpha, "the bundled model fuses silhouettes, so the fine-tune validates on RGBA pixels"
    assert _finetune_bundled(synth, tmp_path / "ft") == 0
    config = json.loads((tmp_path / "ft" / "config.json").read_text())
    assert config["search"]["embedding"] == "projection"
    assert config["search"]["colour_weight"] == base.info.colour_weight, "validated on the base's vector"
    assert config["lambda_rec"] == 0.0, "a search-only base keeps training without reconstruction"
    assert main(["export", str(tmp_path / "ft" / "last.pt"), str(tmp_path / "ft.safetensors"),
                 "--workers", "0"]) == 0
    tuned = load_model_file(tmp_path / "ft.safetensors")
    for field in ("embedding", "colour_weight", "colour_bins", "texture_weight", "pattern_weight", "silhouette_weight",
                  "cue_size", "search_only"):
        assert getattr(tuned.info, field) == getattr(base.info, field), field
    assert (tuned.post is None) == (base.post is None)
    assert base.whitening is not None, "the bundled model whitens its vectors"
    assert np.array_equal(tuned.whitening.matrix, base.whitening.matrix), "a fine-tune keeps its base's whitening"
    assert tuned.info.notes["whitening"]["kept_from"] == DEFAULT_MODEL.name
    assert tuned.info.notes["whitening"]["recentred_on"] > 0
    # Re-centred where the fine-tune moved the network's part; the descriptors' part is the base's.
    net = PROJECTION_DIM
    assert np.allclose(tuned.whitening.mean[net:], base.whitening.mean[net:], atol=1e-6)
    assert not np.allclose(tuned.whitening.mean[:net], base.whitening.mean[:net], atol=1e-7)
    assert tuned.info.config == base.info.config
    assert tuned.info.notes["finetuned_from"] == str(DEFAULT_MODEL)
    assert tuned.info.notes["training_set"]["unrecorded_base"] == base.info.name
    assert main(["export", str(tmp_path / "ft" / "last.pt"), str(tmp_path / "f.safetensors"), "--embedding",
                 "style", "--colour-weight", "0", "--workers", "0"]) == 0
    plain = load_model_file(tmp_path / "f.safetensors")
    assert (plain.info.embedding, plain.info.colour_weight) == ("style", 0.0) and plain.post is not None
    assert plain.whitening is None, "other vectors than the base's whitening was fitted on"


def test_finetune_from_a_search_only_file_is_reproducible_by_seed(synth, tmp_path):
    """The decoder the file lacks starts from --seed: same seed, same weights; another seed, another decoder."""
    def finetune(name: str, seed: int) -> int:
        return _finetune_bundled(synth, tmp_path / name, "--lambda-rec", "0.01", "--seed", str(seed), "--steps", "1")

    assert finetune("a", 3) == 0 and finetune("b", 3) == 0
    a, b = (torch.load(tmp_path / n / "last.pt", weights_only=True)["model"] for n in "ab")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert finetune("c", 4) == 0
    c = torch.load(tmp_path / "c" / "last.pt", weights_only=True)["model"]
    assert not torch.equal(a["decoder.to_rgb.weight"], c["decoder.to_rgb.weight"])


# -- 0. progress for a GUI -------------------------------------------------------------------------------


def test_progress_json_lines_on_stdout(synth, tmp_path, capsys):
    assert _finetune_bundled(synth, tmp_path / "ft", "--progress-json", "-", "--eval-every", "1") == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    steps = [r for r in lines if "loss" in r]
    assert [r["step"] for r in steps] == [1, 2] and all(r["steps"] == 2 for r in lines)
    assert steps[0]["eta_s"] >= 0 and steps[-1]["eta_s"] == 0 and steps[-1]["elapsed_s"] > 0
    vals = [r for r in lines if "val" in r]
    assert [r["step"] for r in vals] == [0, 1, 2] and vals[0]["eta_s"] is None and "P@1" in vals[0]["val"]
    assert lines[-1]["done"] is True and lines[-1]["summary"]["steps"] == 2, "the summary is the last line"


# -- 2. one project split for every consensus level -------------------------------------------------------


def _levelled_manifest() -> list[Sample]:
    """20 projects of 6 images, cut into sub-groups at levels 3, 4 and 5, named per level as BAM-FG-C_N does."""
    rows = []
    for p in range(20):
        images = [f"p{p}-{i}.png" for i in range(6)]
        for level, cuts in ((3, [images]), (4, [images[:3], images[3:]]), (5, [images[:2], images[2:4]])):
            rows += [Sample(path, f"p{p}/c{level}-{k}", level, project=f"p{p}")
                     for k, cut in enumerate(cuts) for path in cut]
    return rows


def test_every_consensus_level_shares_one_project_split():
    everything = _levelled_manifest()
    plan = plan_by_project(everything, val=0.2, test=0.2, seed=1)
    assert (len(plan.val), len(plan.test)) == (4, 4)
    where: dict[str, set[str]] = {}
    for level in (3, 4, 5):
        split = plan.apply(at_consensus(everything, level))
        for name in ("train", "val", "test"):
            for s in split.of(name):
                where.setdefault(s.project_key, set()).add(name)
    assert all(len(places) == 1 for places in where.values()), "no project in two splits at any level"
    # Each level split by its own group names, as before, does mix them.
    per_level: dict[str, set[str]] = {}
    for level in (3, 4, 5):
        rows = [Sample(s.path, s.group, s.consensus) for s in at_consensus(everything, level)]
        split = plan_by_project(rows, 0.2, 0.2, 1).apply(rows)
        for name in ("train", "test"):
            for s in split.of(name):
                per_level.setdefault(s.path.split("-")[0], set()).add(name)
    assert any(len(places) == 2 for places in per_level.values())


def test_trainer_plans_over_all_levels_and_records_the_split(tmp_path):
    images = read_manifest(write_style_set(tmp_path / "img", groups=1, per_group=6, size=36, seed=1))
    rows = [Sample(images[int(s.path.split("-")[1][0])].path, s.group, s.consensus, project=s.project)
            for s in _levelled_manifest()]
    manifest = write_manifest(tmp_path / "levels.csv", rows)
    projects = {}
    for level in ("3", "5"):
        args = parse_args(["train", "--data", str(manifest), "--out", str(tmp_path / level), "--consensus", level,
                           "--val", "0.2", "--test", "0.2", "--steps", "1", "--lambda-rec", "0", *SHORT])
        trainer = Trainer(args)
        projects[level] = {name: {s.project for s in trainer.split.of(name)} for name in ("train", "val", "test")}
        assert trainer.training_set.held_out == trainer.held_out
    assert projects["3"] == projects["5"]


# -- 3. eval checks the split against what the model trained on --------------------------------------------


def test_eval_scores_the_held_out_split_and_refuses_training_projects(run_with_test_split, synth, tmp_path,
                                                                        capsys):
    ckpt = run_with_test_split / "last.pt"
    report = tmp_path / "r.json"
    assert main(["eval", "--data", str(synth), "--model", str(ckpt), "--workers", "0",
                 "--report", str(report)]) == 0
    r = json.loads(report.read_text())
    assert r["split"]["name"] == "test" and "held out by the run of last" in r["split"]["how"]
    assert r["data"]["images"] == 12 and r["split"]["overlap"] == {"checked": ["last"], "unchecked": [],
                                                                     "projects": 0, "allowed": False}
    assert "split: test: held out by the run of last" in capsys.readouterr().out

    assert main(["eval", "--data", str(synth), "--model", str(ckpt), "--split", "train", "--workers", "0"]) == 2
    assert "6 of the 6 evaluated projects are in the training set of last" in capsys.readouterr().err
    assert main(["eval", "--data", str(synth), "--model", str(ckpt), "--split", "all", "--allow-overlap",
                 "--workers", "0", "--report", str(report)]) == 0
    assert "WARNING: 6 of the 12 evaluated projects" in capsys.readouterr().err
    assert json.loads(report.read_text())["split"]["overlap"]["projects"] == 6

    model = tmp_path / "m.safetensors"
    assert main(["export", str(ckpt), str(model), "--workers", "0"]) == 0
    assert main(["eval", "--data", str(synth), "--model", str(model), "--workers", "0",
                 "--report", str(report)]) == 0
    assert json.loads(report.read_text())["data"]["images"] == 12, "the model file carries the split"


def test_finetune_reuses_its_base_split_and_adds_to_its_training_set(run_with_test_split, synth, tmp_path, capsys):
    ckpt = run_with_test_split / "last.pt"
    assert main(["finetune", "--from", str(ckpt), "--data", str(synth), "--out", str(tmp_path / "ft"),
                 "--steps", "1", *SHORT]) == 0
    base = json.loads((run_with_test_split / "config.json").read_text())["split"]
    assert json.loads((tmp_path / "ft" / "config.json").read_text())["split"] == base
    # A fine-tune on a fresh split of the same styles trains on the base's test styles: eval refuses them.
    assert main(["finetune", "--from", str(ckpt), "--data", str(synth), "--out", str(tmp_path / "mixed"),
                 "--val", "0.25", "--split-seed", "9", "--steps", "1", *SHORT]) == 0
    capsys.readouterr()
    assert main(["eval", "--data", str(synth), "--model", str(tmp_path / "mixed" / "last.pt"), "--split", "test",
                 "--val", "0.25", "--test", "0.25", "--workers", "0"]) == 2
    assert "in the training set of last" in capsys.readouterr().err


# -- 5, 6. augmentation and ablation switches ----------------------------------------------------------------


def test_augment_modes():
    pixels = np.arange(36 * 36 * 3, dtype=np.uint8).reshape(36, 36, 3)
    centre = augment(pixels, 32, None)
    assert all(np.array_equal(augment(pixels, 32, seed, "none"), centre) for seed in range(5))
    flipped = [not any(np.array_equal(augment(pixels, 32, seed, "crop-flip"), pixels[t:t + 32, l:l + 32])
                       for t in range(5) for l in range(5)) for seed in range(12)]
    assert any(flipped) and not all(flipped)
    for seed in range(12):
        crop = augment(pixels, 32, seed, "crop")
        assert any(np.array_equal(crop, pixels[t:t + 32, l:l + 32]) for t in range(5) for l in range(5))


@pytest.mark.parametrize("extra, terms", [
    (["--loss-on", "style", "--lambda-rec", "0"], {"contrastive"}),
    (["--lambda-con", "0", "--lambda-rec", "0.01", "--chunk-size", "4"], {"reconstruction"}),
])
def test_ablation_switches_train_only_what_they_say(synth, tmp_path, extra, terms):
    args = parse_args(["train", "--data", str(synth), "--out", str(tmp_path), "--steps", "1", "--augment", "crop",
                       *SHORT, *extra])
    trainer = Trainer(args)
    head = trainer.net.head.net[0].weight.detach().clone()
    assert trainer.fit()["steps"] == 1
    assert torch.equal(trainer.net.head.net[0].weight, head), "no term reaches the projection head"
    row = next(json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()
               if "loss/total" in json.loads(line))
    weighted = {"contrastive": row["loss/contrastive"], "reconstruction": 1e-2 * row["loss/reconstruction"]}
    assert row["loss/total"] == pytest.approx(sum(weighted[t] for t in terms), rel=1e-5)


def test_ablations_refuse_an_untrained_head_as_the_search_vector(synth, tmp_path, capsys):
    assert main(["train", "--data", str(synth), "--out", str(tmp_path), "--loss-on", "style", "--embedding",
                 "projection", *SHORT]) == 2
    assert "--embedding style" in capsys.readouterr().err
    assert main(["train", "--data", str(synth), "--out", str(tmp_path), "--lambda-con", "0", "--lambda-rec", "0",
                 *SHORT]) == 2
    assert "every loss term has weight 0" in capsys.readouterr().err


@pytest.mark.parametrize("loss_on, lambda_con", [("style", 1.0), ("projection", 0.0)])
def test_ablations_keep_logit_accumulation_exact(loss_on, lambda_con):
    module = TrainModule(build_model(ModelConfig(input_size=32), seed=1), loss_on)
    x = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    labels = torch.arange(4).repeat_interleave(2)
    objective = Objective(tau=0.1, lambda_rec=1e-2, lambda_con=lambda_con)
    full = plain_step(module, x, labels, objective)
    reference = {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}
    module.zero_grad(set_to_none=True)
    chunked = accumulated_step(module, x, labels, objective, chunk_size=3)
    assert chunked.total == pytest.approx(full.total, rel=1e-5)
    grads = {n: p.grad for n, p in module.named_parameters() if p.grad is not None}
    assert grads.keys() == reference.keys()
    assert any(n.startswith("net.head") for n in grads) == (loss_on == "projection"), "f skips the head"
    for name, g in reference.items():
        torch.testing.assert_close(grads[name], g, rtol=1e-3, atol=1e-4 * g.abs().max().item() + 1e-8, msg=name)
