"""``python -m trainer export CKPT OUT``: a checkpoint becomes the app's model file.

Given a model file instead of a checkpoint, export writes its network again with another search
vector (``--colour-weight``, ``--texture-weight``, ``--pattern-weight``, ``--silhouette-weight``,
``--granulometry-weight``, ``--contrast-weight``, ``--cooccurrence-weight``, ``--cue-size``): how the bundled
model's fusion weights were changed, after choosing them on out-of-domain validation (bench/fusion_search.py),
without retraining.

The model file carries the weights, the search vector (f or h(f), the colour weight and bins, and
per-dimension standardisation of style codes), the training data card id, and the run's training-set
record (:mod:`trainer.provenance`: its held-out split and hashed training projects, which ``eval`` checks).

``--whiten POWER,SHRINK[,DIMS]`` also fits a shrunk PCA whitening of the finished vectors (:mod:`core.whitening`),
keeping its DIMS strongest directions if given, on the same training images (or ``--fit-on``'s; a model file
needs ``--fit-on``), without any image the evaluation guard reserves: how the bundled model's whitening was made.

The search vector is the run's (:class:`trainer.base.SearchVector`), and a fine-tune's run keeps its base
model's: exporting a fine-tune of the bundled model gives h(f) fused with colour at 0.2 again, not plain
f. ``--embedding``, ``--colour-weight`` and ``--no-standardise`` override it. Standardisation is fitted on
the training split's raw style codes: the team measured that it lifts retrieval a lot, and fitting it on
training data (not on a user's library) keeps the shipped model's behaviour fixed.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

import numpy as np

from core.embedder import Embedder
from core.errors import ModelFileError
from core.modelfile import (BUILTINS, SAME_RAW_NOTE, LoadedModel, ModelInfo, PostProcess, load_model_file, raw_layout,
                            save_model, vector_layout)
from core.whitening import Whitening
from core.model import Aladin
from trainer.base import SearchVector
from trainer.checkpoint import load_checkpoint, net_from_checkpoint
from trainer.corpora.reserved import reserved_reason
from trainer.data import decode_for_eval
from trainer.errors import CheckpointError, DataError
from trainer.evaluate import FUSION_FLAGS, add_fusion_arguments, fusion_options, raw_in_batches
from trainer.manifest import at_consensus, read_manifest
from trainer.provenance import NOTE, TrainingSet
from trainer.splits import HeldOut, plan_by_project

log = logging.getLogger(__name__)


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
    p.add_argument("--whiten", type=whiten_argument, default=None, metavar="POWER,SHRINK[,DIMS]",
                   help="also fit a whitening of the search vectors on those images, e.g. 0.5,0.8, keeping only its "
                        "DIMS strongest directions if given (default: none; a model file's own is kept while its "
                        "vectors stay the same)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--workers", type=int, default=None)
    p.set_defaults(func=run)


def training_paths(state: dict, fit_on: Path | None) -> list[str]:
    """The images standardisation is fitted on: ``fit_on``'s, else the run's training split.

    The split is the one the run recorded; a checkpoint without that record (from before it, or slimmed for
    transfer) is split again from its settings, as it was then: by source where the run held sources out.
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
    if held_out is None and config.get("val_sources"):
        held_out = HeldOut.of_sources(config["val_sources"], config.get("test_sources") or [])
    elif held_out is None:
        held_out = plan_by_project(everything, config["val"], config["test"], config["split_seed"])
    return [s.path for s in held_out.apply(at_consensus(everything, config.get("consensus"))).train]


class WhitenSettings(NamedTuple):
    """How a whitening is fitted (:meth:`core.whitening.Whitening.fit`); ``dims`` None keeps every direction."""

    power: float
    shrink: float
    dims: int | None = None


def whiten_argument(text: str) -> WhitenSettings:
    """``POWER,SHRINK`` each from 0 to 1, and optionally ``,DIMS``: how many directions to keep."""
    parts = text.split(",")
    try:
        if len(parts) not in (2, 3):
            raise ValueError
        settings = WhitenSettings(float(parts[0]), float(parts[1]), int(parts[2]) if len(parts) == 3 else None)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected POWER,SHRINK[,DIMS] such as 0.5,0.8 or 0.5,0.6,1024, "
                                         f"got {text!r}") from None
    if not (0.0 <= settings.power <= 1.0 and 0.0 <= settings.shrink <= 1.0):
        raise argparse.ArgumentTypeError(f"power and shrink must each lie in [0, 1], got {text!r}")
    if settings.dims is not None and settings.dims < 1:
        raise argparse.ArgumentTypeError(f"a whitening keeps at least one direction, got {text!r}")
    return settings


def fit_sample(paths: list[str], fit_max: int) -> list[str]:
    """At most ``fit_max`` of ``paths``, evenly spread (a manifest lists its sources in turn)."""
    if len(paths) > fit_max:
        paths = [paths[i] for i in np.linspace(0, len(paths) - 1, fit_max).round().astype(int)]
    return paths


def whitening_paths(paths: list[str], fit_max: int) -> list[str]:
    """The images a whitening is fitted on: ``paths`` less those reserved for evaluation, at most ``fit_max``."""
    return fit_sample([p for p in paths if not reserved_reason(p)], fit_max)


def unwhitened_vectors(model: LoadedModel, pixels: np.ndarray, device: str) -> np.ndarray:
    """``model``'s finished vectors of ``pixels`` before any whitening: what a whitening is fitted on."""
    embedder = Embedder(replace(model, whitening=None), device=device)
    return embedder.finish(raw_in_batches(embedder, pixels))


def fit_whitening(model: LoadedModel, paths: list[str], settings: WhitenSettings, fit_max: int,
                  device: str, workers: int | None) -> Whitening:
    """A whitening of ``model``'s finished vectors, fitted on ``paths`` less the images reserved for evaluation.

    Raises:
        DataError: no image is left to fit on, or ``settings`` keep more directions than the vectors have.
    """
    pixels, _, errors = decode_for_eval(whitening_paths(paths, fit_max), model.info.decode_size, workers=workers,
                                       alpha=model.info.reads_alpha)
    if len(pixels) < 2:
        raise DataError("too few readable images to fit a whitening on")
    try:
        whitening = Whitening.fit(unwhitened_vectors(model, pixels, device), settings.power, settings.shrink,
                                  vector_layout(model.info), settings.dims)
    except ValueError as exc:
        raise refused(exc) from exc
    model.info.notes["whitening"] = {
        "power": settings.power, "shrink": settings.shrink, "dims": whitening.out_dim, "images": len(pixels),
        "unreadable": len(errors), "reserved_left_out": sum(1 for p in paths if reserved_reason(p))}
    return whitening


def refused(exc: ValueError) -> DataError:
    return DataError(f"search vector: {exc}")


def reexport(source: Path, out: Path, name: str | None, fusion: dict, whiten: WhitenSettings | None = None,
             fit_on: Path | None = None, fit_max: int = 5000, device: str = "auto",
             workers: int | None = None) -> Path:
    """Write a model file's network and statistics again with other fusion settings (``fusion``: ModelInfo fields).

    Its whitening is kept while the vectors stay the same, fitted again on ``fit_on`` with ``whiten``,
    and dropped otherwise (it would whiten vectors it was not fitted on). Where the raw vectors stay the
    same (only weights or whitening change), the new file names the source's checksum among those whose
    raw vectors it makes, so libraries indexed with the source switch to it without re-embedding.

    Raises:
        ModelFileError: ``source`` is damaged. DataError: the settings are out of range, or ``whiten``
            without ``fit_on``.
    """
    model = load_model_file(source)
    notes = {**model.info.notes, "reexported_from": f"{source.name} sha256 {model.checksum}"}
    try:
        info = replace(model.info, name=name or model.info.name, notes=notes, **fusion)
    except ValueError as exc:
        raise refused(exc) from exc
    if raw_layout(info) == raw_layout(model.info):
        info.notes[SAME_RAW_NOTE] = [model.checksum, *model.info.notes.get(SAME_RAW_NOTE, [])]
    else:
        info.notes.pop(SAME_RAW_NOTE, None)
    model = replace(model, info=info)
    whitening = model.whitening
    if whiten is not None:
        if fit_on is None:
            raise DataError("a model file does not say where its training images are: --whiten needs --fit-on MANIFEST")
        whitening = fit_whitening(model, [s.path for s in read_manifest(fit_on)], whiten, fit_max, device, workers)
    elif whitening is not None and whitening.fitted_for != vector_layout(info):
        info.notes.pop("whitening", None)
        whitening = None
    return save_model(out, model.net, info, model.post, whitening)


def export(checkpoint: Path, out: Path, name: str | None = None, embedding: str | None = None,
           standardise: bool | None = None, fit_on: Path | None = None, fit_max: int = 5000,
           device: str = "auto", workers: int | None = None, fusion: dict | None = None,
           whiten: WhitenSettings | None = None) -> Path:
    """Write the model file of ``checkpoint``; ``None`` settings keep the run's search vector.

    ``fusion`` sets ModelInfo's descriptor fields (see :func:`trainer.evaluate.fusion_options`).
    """
    fusion = fusion or {}
    if checkpoint.suffix == ".safetensors":
        if embedding is not None or standardise is not None or (fit_on is not None and whiten is None):
            raise DataError(f"a model file keeps its vector and statistics: only --name, {FUSION_FLAGS} and "
                            "--whiten (with --fit-on) apply to it")
        return reexport(checkpoint, out, name, fusion, whiten, fit_on, fit_max, device, workers)
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
        paths = fit_sample(training_paths(state, fit_on), fit_max)
        pixels, _, errors = decode_for_eval(paths, info.decode_size, workers=workers)
        embedder = Embedder(LoadedModel(net, info, None, str(checkpoint), ""), device=device, which="style")
        post = PostProcess.fit(raw_in_batches(embedder, pixels)[:, :embedder.net_dim])
        info.notes["standardisation"] = f"fitted on {len(pixels)} training images ({len(errors)} unreadable)"
    else:
        info.notes["standardisation"] = "none"
    whitening = None
    if whiten is not None or config.get("finetune"):
        model, paths = LoadedModel(net, info, post, str(checkpoint), ""), training_paths(state, fit_on)
        whitening = (fit_whitening(model, paths, whiten, fit_max, device, workers) if whiten is not None
                     else base_whitening(config.get("source"), model, paths, fit_max, device, workers))
    return save_model(out, net.cpu(), info, post, whitening)


def base_whitening(source: str | None, tuned: LoadedModel, paths: list[str], fit_max: int, device: str,
                   workers: int | None) -> Whitening | None:
    """A fine-tune's base model's whitening, re-centred where the fine-tune moved the network's part.

    The base's training images are not at hand where a user teaches styles, and fine-tuning changes only
    the network's part of the vector. Whitening scales that part up (it varies little beside the
    histograms), so the shift of its mean alone moved every vector alike and cost the other styles 4-5
    points P@1 (bench/teach_gain.py); the fine-tune's training images measure the shift, base and
    fine-tune both embedding them, and the centre moves by it.
    """
    if not source or source in BUILTINS:
        return None
    try:
        base = load_model_file(source)
    except ModelFileError as exc:
        log.warning("the base model's whitening is not kept: %s", exc)
        return None
    if base.whitening is None or base.whitening.fitted_for != vector_layout(tuned.info):
        return None
    pixels, _, _ = decode_for_eval(whitening_paths(paths, fit_max), tuned.info.decode_size, workers=workers,
                                  alpha=tuned.info.reads_alpha)
    shift = np.zeros(base.whitening.dim, np.float32)
    if len(pixels):
        shift = (unwhitened_vectors(tuned, pixels, device).mean(0)
                 - unwhitened_vectors(base, pixels, device).mean(0)).astype(np.float32)
    tuned.info.notes["whitening"] = {**base.info.notes.get("whitening", {}), "kept_from": Path(source).name,
                                     "recentred_on": len(pixels)}
    return replace(base.whitening, mean=base.whitening.mean + shift)


def run(args: argparse.Namespace) -> int:
    path = export(args.checkpoint, args.out, args.name, args.embedding, args.standardise, args.fit_on,
                  args.fit_max, args.device, args.workers, fusion_options(args), args.whiten)
    print(f"wrote {path}")
    return 0
