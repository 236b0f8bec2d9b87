"""``python -m trainer export CKPT OUT``: a checkpoint becomes the app's model file.

Given a model file instead of a checkpoint, export writes its network again with another search
vector (``--colour-weight``, ``--texture-weight``, ``--pattern-weight``, ``--cue-size``): how the bundled model's fusion
weights were changed, after choosing them on out-of-domain validation (bench/fusion_search.py),
without retraining.

The model file carries the weights, the search vector (f or h(f), the colour weight and bins, and
per-dimension standardisation of style codes), the training data card id, and the run's training-set
record (:mod:`trainer.provenance`: its held-out split and hashed training projects, which ``eval`` checks).

The search vector is the run's (:class:`trainer.base.SearchVector`), and a fine-tune's run keeps its base
model's: exporting a fine-tune of the bundled model gives h(f) fused with colour at 0.2 again, not plain
f. ``--embedding``, ``--colour-weight`` and ``--no-standardise`` override it. Standardisation is fitted on
the training split's raw style codes: the team measured that it lifts retrieval a lot, and fitting it on
training data (not on a user's library) keeps the shipped model's behaviour fixed.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np

from core.embedder import Embedder
from core.modelfile import LoadedModel, PostProcess, load_model_file, save_model
from core.model import Aladin
from trainer.base import SearchVector
from trainer.checkpoint import load_checkpoint, net_from_checkpoint
from trainer.data import decode_for_eval
from trainer.errors import CheckpointError, DataError
from trainer.evaluate import add_fusion_arguments, fusion_options, raw_in_batches
from trainer.manifest import at_consensus, read_manifest
from trainer.provenance import NOTE, TrainingSet
from trainer.splits import plan_by_project


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write the app's model file from a training checkpoint")
    p.add_argument("checkpoint", type=Path, metavar="CKPT|MODEL.safetensors")
    p.add_argument("out", type=Path, metavar="OUT.safetensors")
    p.add_argument("--name", default=None, help="model name shown in the app (default: OUT's stem)")
    p.add_argument("--embedding", choices=("style", "projection"), default=None,
                   help="vector the app indexes (default: the run's; a fine-tune's is its base model's)")
    add_fusion_arguments(p, "the run's; a fine-tune's is its base model's")
    p.add_argument("--no-standardise", dest="standardise", action="store_const", const=False, default=None,
                   help="do not fit per-dimension standardisation of style codes (default: fit, unless the run's "
                        "vector is an unstandardised style code)")
    p.add_argument("--fit-on", type=Path, default=None, metavar="MANIFEST",
                   help="fit standardisation on these images (default: the run's training split)")
    p.add_argument("--fit-max", type=int, default=5000, help="at most this many images for the fit")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--workers", type=int, default=None)
    p.set_defaults(func=run)


def training_paths(state: dict, fit_on: Path | None) -> list[str]:
    """The images standardisation is fitted on: ``fit_on``'s, else the run's training split.

    The split is the one the run recorded; a checkpoint from before that record is split again from
    its settings, as it was then.
    """
    if fit_on is not None:
        return [s.path for s in read_manifest(fit_on)]
    config = state["config"]
    data = Path(config["data"])
    if not data.exists():
        raise DataError(f"the run's training data {data} is not available to fit standardisation; "
                        "pass --fit-on MANIFEST or --no-standardise")
    everything = read_manifest(data)
    record = state.get(NOTE)
    held_out = TrainingSet.from_record(record).held_out if record else None
    if held_out is None:
        held_out = plan_by_project(everything, config["val"], config["test"], config["split_seed"])
    return [s.path for s in held_out.apply(at_consensus(everything, config.get("consensus"))).train]


def refused(exc: ValueError) -> DataError:
    return DataError(f"search vector: {exc}")


def reexport(source: Path, out: Path, name: str | None, fusion: dict) -> Path:
    """Write a model file's network and statistics again with other fusion settings (``fusion``: ModelInfo fields).

    Raises:
        ModelFileError: ``source`` is damaged. DataError: the settings are out of range.
    """
    model = load_model_file(source)
    notes = {**model.info.notes, "reexported_from": f"{source.name} sha256 {model.checksum}"}
    try:
        info = replace(model.info, name=name or model.info.name, notes=notes, **fusion)
    except ValueError as exc:
        raise refused(exc) from exc
    return save_model(out, model.net, info, model.post)


def export(checkpoint: Path, out: Path, name: str | None = None, embedding: str | None = None,
           standardise: bool | None = None, fit_on: Path | None = None, fit_max: int = 5000,
           device: str = "auto", workers: int | None = None, fusion: dict | None = None) -> Path:
    """Write the model file of ``checkpoint``; ``None`` settings keep the run's search vector.

    ``fusion`` sets ModelInfo's descriptor fields (see :func:`trainer.evaluate.fusion_options`).
    """
    fusion = fusion or {}
    if checkpoint.suffix == ".safetensors":
        if embedding is not None or standardise is not None or fit_on is not None:
            raise DataError("a model file keeps its vector and statistics: only --name, --colour-weight, "
                            "--texture-weight, --pattern-weight, --cue-size and --colour-bins apply to it")
        return reexport(checkpoint, out, name, fusion)
    state = load_checkpoint(checkpoint)
    config = state["config"]
    net = net_from_checkpoint(state)
    if not isinstance(net, Aladin):
        raise CheckpointError(f"{checkpoint}: a ResNet baseline is not an app model; evaluate it with "
                              "eval --model CKPT or fuse it with eval --fuse-with CKPT")
    search = SearchVector.from_config(config).overridden(embedding, standardise=standardise)
    try:
        search = replace(search, **fusion)
        search.model_info("check", net.config)
    except ValueError as exc:
        raise refused(exc) from exc
    notes = {"checkpoint": str(checkpoint), "step": state["step"], "best_val": state.get("best"),
             **{k: config.get(k) for k in ("tau", "lambda_rec", "lambda_con", "loss_on", "augment", "lr",
                                           "groups_per_batch")}}
    if config.get("finetune"):
        notes["finetuned_from"] = config.get("source")
    if state.get(NOTE):
        notes[NOTE] = state[NOTE]
    # A decoder the run never trained (lambda 0) is random weights: not worth shipping.
    info = search.model_info(name or out.stem, net.config, trained=True, training_data=state.get("data_card", ""),
                             notes=notes, search_only=not config.get("lambda_rec"))
    post = None
    if search.standardise and search.embedding == "style":
        paths = training_paths(state, fit_on)
        if len(paths) > fit_max:
            paths = [paths[i] for i in np.linspace(0, len(paths) - 1, fit_max).round().astype(int)]
        pixels, _, errors = decode_for_eval(paths, info.decode_size, workers=workers)
        embedder = Embedder(LoadedModel(net, info, None, str(checkpoint), ""), device=device, which="style")
        post = PostProcess.fit(raw_in_batches(embedder, pixels)[:, :embedder.net_dim])
        info.notes["standardisation"] = f"fitted on {len(pixels)} training images ({len(errors)} unreadable)"
    else:
        info.notes["standardisation"] = "none"
    return save_model(out, net.cpu(), info, post)


def run(args: argparse.Namespace) -> int:
    path = export(args.checkpoint, args.out, args.name, args.embedding, args.standardise, args.fit_on,
                  args.fit_max, args.device, args.workers, fusion_options(args))
    print(f"wrote {path}")
    return 0
