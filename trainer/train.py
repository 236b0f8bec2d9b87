"""``python -m trainer train`` and ``finetune``: the recipe of sec. 3.2 and 5.

Adam at lr 1e-4 with exponential decay 0.9 (per epoch by default), eq. 4 with
lambda = 1e-2, N-group pair batches, optional logit accumulation, early
stopping on validation P@1, checkpoints that resume exactly, torchrun/DDP.

Two additions aim at style that generalises beyond the training sources
(issue 10): ``--val-sources``/``--test-sources`` hold whole sources out, so
early stopping and ``best.pt`` reward what carries to unseen art, and
``--ssl-weight`` adds self-supervised positives (two views of one image,
:func:`trainer.losses.view_loss`) beside the group term.

The split is planned once over the manifest's projects, all consensus levels
together (:mod:`trainer.splits`), and recorded with the run together with the
training projects (:mod:`trainer.provenance`). ``finetune`` keeps its base's
search vector, split and training set (:mod:`trainer.base`). The paper's
ablations are switches: ``--loss-on style`` (loss on f, not h(f)) and
``--lambda-con 0`` (ALADIN-Unsup, reconstruction only).
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from core.cpu import plan
from core.embedder import Embedder
from core.model import Aladin, ModelConfig, build_model
from core.modelfile import LoadedModel
from trainer import distributed
from trainer.base import Base, SearchVector, load_base
from trainer.checkpoint import load_checkpoint, save_checkpoint
from trainer.corpora.reserved import reserved_reason
from trainer.data import (AUGMENTS, PairDataset, PixelCache, cache_root, collate, decode_for_eval, load_size_for,
                          normalise)
from trainer.errors import CheckpointError, DataError
from trainer.evaluate import finish, raw_in_batches
from trainer.losses import DEFAULT_LAMBDA, DEFAULT_TAU
from trainer.manifest import Sample, at_consensus, data_card_id, group_indices, read_manifest
from trainer.metrics import retrieval_metrics
from trainer.progress import Progress
from trainer.provenance import TrainingSet
from trainer.resnet import ResNetStyle, build_resnet
from trainer.sampler import GroupPairSampler
from trainer.splits import HeldOut, plan_by_project, source_names, split_by_source
from trainer.step import LOSS_ON, Objective, TrainModule, accumulated_step, plain_step

log = logging.getLogger(__name__)

# Settings that define the data stream; resuming with different values could not continue exactly.
# (The batch shape, --singles-per-batch included, is checked by the sampler's own state.)
RESUME_MUST_MATCH = ("arch", "data", "consensus", "val", "test", "split_seed", "groups_per_batch", "seed",
                     "variant", "input_size", "val_sources", "test_sources", "augment")
# What a run made before a setting existed did, so its checkpoints still resume.
EARLIER_DEFAULTS = {"augment": "crop-flip"}
# The split of a run that names none (finetune reuses its base's first): --val, --test, --split-seed.
SPLIT_DEFAULTS = (0.1, 0.0, 0)
CACHE_AUTO_LIMIT = 4 << 30


def add_options(p: argparse.ArgumentParser, finetune: bool) -> None:
    p.add_argument("--data", required=True, type=Path, metavar="MANIFEST|FOLDER",
                   help="CSV with path,group[,consensus], or a folder with one sub-folder per group")
    p.add_argument("--out", required=True, type=Path, metavar="RUN_DIR",
                   help="run folder: checkpoints, metrics.jsonl, config.json, summary.json")
    if finetune:
        p.add_argument("--from", dest="source", required=True, type=Path, metavar="CKPT|MODEL",
                       help="trainer checkpoint or model file to start from")
    p.add_argument("--consensus", type=int, default=None, metavar="N", help="train on BAM-FG-C_N rows only")
    p.add_argument("--arch", choices=("aladin", "resnet50", "resnet18"), default="aladin",
                   help="aladin, or the discriminative ResNet baseline of sec. 5.4 (ignored by finetune)")
    p.add_argument("--variant", choices=("s", "l"), default="s", help="ALADIN size (ignored by finetune)")
    p.add_argument("--input-size", type=int, default=256, metavar="PX",
                   help="training input size (ignored by finetune; 64-128 for CPU training)")
    p.add_argument("--groups-per-batch", type=int, default=512, metavar="N",
                   help="N groups, two images each: batch 2N (paper: 1024 images)")
    p.add_argument("--chunk-size", type=int, default=0, metavar="B",
                   help="logit accumulation: forward/backward B images at a time (0: whole batch at once)")
    p.add_argument("--tau", type=float, default=DEFAULT_TAU,
                   help=f"temperature of eq. 2 (default {DEFAULT_TAU}: the paper names no value, only 'as in "
                        "SimCLR'; 0.1 is SimCLR's and SupCon's choice for unit vectors)")
    p.add_argument("--lambda-con", type=float, default=1.0, metavar="W",
                   help="weight of the contrastive term (default 1; 0 with --lambda-rec > 0 is the paper's "
                        "ALADIN-Unsup ablation: reconstruction only, groups unused)")
    p.add_argument("--loss-on", choices=LOSS_ON, default="projection",
                   help="vector the contrastive terms see: h(f) (default, the paper's) or the normalised style "
                        "code f (the Table 2 ablation; the head stays untrained, so validate with --embedding style)")
    p.add_argument("--augment", choices=AUGMENTS, default="crop-flip",
                   help="training crops: random crop and horizontal flip (default, as before this option), random "
                        "crop only, or the centre crop; never colour changes (colour is style)")
    p.add_argument("--ssl-weight", type=float, default=0.0, metavar="W",
                   help="weight of the self-supervised term: two views of each image (other crop, other scale, "
                        "same colours) are positives, other groups negatives (0: off, the paper's objective)")
    p.add_argument("--singles-per-batch", type=int, default=0, metavar="K",
                   help="add K images of single-image groups to each batch: negatives for the group term and, "
                        "with --ssl-weight, trained by their own two views (default 0: skipped)")
    p.add_argument("--lambda-rec", type=float, default=None,
                   help=f"weight of the L1 reconstruction (eq. 4; default {DEFAULT_LAMBDA}, 0 for the ResNets; "
                        "finetune: the base's, 0 for a search-only model file); 0 skips the content encoder and "
                        "decoder. The term is the mean absolute error per pixel and channel of the normalised "
                        "input (one unit is about 0.23 of the 0-1 intensity range)")
    p.add_argument("--lr", type=float, default=1e-5 if finetune else 1e-4)
    p.add_argument("--lr-decay", type=float, default=0.9, help="multiply the LR by this every --decay-every steps")
    p.add_argument("--decay-every", type=int, default=0, metavar="STEPS", help="default: once per epoch")
    p.add_argument("--steps", type=int, default=100_000, help="stop after this many optimiser steps")
    p.add_argument("--max-minutes", type=float, default=0, metavar="MIN",
                   help="also stop after this much training time, with the final validation and checkpoint "
                        "(0: no limit); fits a run into a lease on a borrowed GPU")
    p.add_argument("--eval-every", type=int, default=500, metavar="STEPS", help="validation P@1 (0: only at the end)")
    p.add_argument("--patience", type=int, default=10, metavar="EVALS",
                   help="stop after this many validations without a better P@1 (0: never)")
    p.add_argument("--checkpoint-every", type=int, default=1000, metavar="STEPS")
    p.add_argument("--log-every", type=int, default=10, metavar="STEPS")
    p.add_argument("--resume", nargs="?", const="auto", default=None, metavar="CKPT",
                   help="continue from CKPT (default RUN_DIR/last.pt)")
    # finetune: None, so that a split the user did not ask for can be the base's (see Trainer._plan_split).
    val, test, split_seed = (None, None, None) if finetune else SPLIT_DEFAULTS
    p.add_argument("--val", type=float, default=val,
                   help=f"fraction of projects (the manifest's project column, else groups) held out for "
                        f"validation, planned over every consensus level at once (default {SPLIT_DEFAULTS[0]}; "
                        "finetune: the base's split if it holds out projects of this manifest; unused with "
                        "--val-sources)")
    p.add_argument("--test", type=float, default=test,
                   help=f"fraction of projects held out for testing (default {SPLIT_DEFAULTS[1]}; finetune: as "
                        "--val; unused with --val-sources)")
    p.add_argument("--val-sources", type=source_names, default=None, metavar="A,B",
                   help="hold these whole sources (the manifest's source column) out of training and validate "
                        "on them, so early stopping and best.pt are chosen out of domain; replaces --val/--test")
    p.add_argument("--test-sources", type=source_names, default=None, metavar="C,D",
                   help="also hold these sources out, untouched, for `eval --sources C,D` (needs --val-sources)")
    p.add_argument("--split-seed", type=int, default=split_seed)
    p.add_argument("--val-max-images", type=int, default=2000, help="cap on validation images (whole groups)")
    p.add_argument("--val-standardise", choices=("fit", "off"), default=None,
                   help="standardise validation style codes with their own statistics, as export will fit "
                        "them on training images (default fit; finetune: as the base model does)")
    p.add_argument("--embedding", choices=("style", "projection"), default=None,
                   help="vector that validation scores and export records (default style; finetune: the base "
                        "model's, h(f) for the bundled model)")
    p.add_argument("--colour-weight", type=float, default=None, metavar="W",
                   help="fuse the HSV colour histogram into validation and export with weight W in [0, 1) "
                        "(default 0; finetune: the base model's, 0.2 for the bundled model)")
    p.add_argument("--seed", type=int, default=0, help="model initialisation and batch order")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--amp", choices=("auto", "off", "bf16", "fp16"), default="auto",
                   help="mixed precision on CUDA (auto: bf16 where supported, else fp16; off on CPU)")
    p.add_argument("--workers", type=int, default=None,
                   help="decoding processes (0: in-process; default: none when the pixel cache serves "
                        "training, else cores - 1)")
    p.add_argument("--cache", default="auto", metavar="auto|off|DIR",
                   help="decode training images once into a memory-mapped cache (auto: when under 4 GiB)")
    p.add_argument("--data-card", default=None, metavar="ID",
                   help="training-data card id recorded in exported models (default: from the manifest)")
    p.add_argument("--tensorboard", choices=("auto", "off"), default="auto")
    p.add_argument("--progress-json", default=None, metavar="FILE|-",
                   help="one JSON line per log step and validation (step, steps, elapsed_s, eta_s, loss | val), "
                        "then one with done and the summary; '-' writes them to stdout instead of the summary")


def register(sub: argparse._SubParsersAction) -> None:
    for name, finetune, text in (("train", False, "train ALADIN from scratch on a group manifest"),
                                 ("finetune", True, "fine-tune a trained model on cleaned or own groups")):
        p = sub.add_parser(name, help=text)
        add_options(p, finetune)
        p.set_defaults(func=run, finetune=finetune)


def run(args: argparse.Namespace) -> int:
    summary = Trainer(args).fit()
    if summary is not None and args.progress_json != "-":
        print(json.dumps(summary, indent=1))
    return 0


def config_dict(args: argparse.Namespace) -> dict:
    """The run's settings as JSON values: saved in config.json and every checkpoint, compared on resume."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "func"}


def changed_settings(old: dict, new: dict) -> list[str]:
    """The data-stream settings (:data:`RESUME_MUST_MATCH`) on which two run configs differ, as ``key (a -> b)``."""
    before = {k: old.get(k, EARLIER_DEFAULTS.get(k)) for k in RESUME_MUST_MATCH}
    return [f"{k} ({before[k]} -> {new.get(k)})" for k in RESUME_MUST_MATCH if str(before[k]) != str(new.get(k))]


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def select_validation(samples: list[Sample], cap: int) -> list[Sample]:
    """Whole groups in manifest order until ``cap`` images: a fixed, scorable subset."""
    out: list[Sample] = []
    for members in group_indices(samples).values():
        if len(members) < 2:
            continue
        if out and len(out) + len(members) > cap:
            break
        out += [samples[i] for i in members]
    return out


class Trainer:
    """One training run: data, model, optimiser and the loop. State lives here so it can be checkpointed."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.dist = distributed.setup(args.device)
        self.device = self.dist.device
        self.config = config_dict(args)
        self.out = Path(args.out)
        self._check_args()
        self._build_data()
        self._build_model()
        self.step = 0
        self.best = {"P@1": -1.0, "step": -1}
        self.bad_evals = 0
        self.first_eval: dict | None = None
        self.last_eval: dict | None = None
        if args.resume:
            self._resume(self.out / "last.pt" if args.resume == "auto" else Path(args.resume))

    # -- setup -----------------------------------------------------------------------------------------

    def _check_args(self) -> None:
        a = self.args
        self.base: Base | None = None
        if getattr(a, "finetune", False):
            # Fine-tuning keeps the source network's architecture, whatever --arch says.
            self.base = load_base(a.source, a.seed)
            a.arch = "aladin" if isinstance(self.base.net, Aladin) else self.base.net.config.variant
            self.config["arch"] = a.arch
        if a.lambda_rec is None:
            a.lambda_rec = (self.base.lambda_rec if self.base is not None
                            else 0.0 if a.arch.startswith("resnet") else DEFAULT_LAMBDA)
            self.config["lambda_rec"] = a.lambda_rec
        if a.arch.startswith("resnet") and a.lambda_rec > 0:
            raise DataError("the ResNet baseline has no decoder; use --lambda-rec 0")
        if a.steps < 1 or a.groups_per_batch < 2 or a.log_every < 1:
            raise DataError("--steps and --log-every must be at least 1 and --groups-per-batch at least 2")
        if (a.chunk_size < 0 or a.lambda_rec < 0 or a.ssl_weight < 0 or a.singles_per_batch < 0 or a.tau <= 0
                or a.lambda_con < 0):
            raise DataError("--chunk-size, --lambda-rec, --lambda-con, --ssl-weight and --singles-per-batch must be "
                            "non-negative and --tau positive")
        if not (a.lambda_con or a.lambda_rec or a.ssl_weight):
            raise DataError("every loss term has weight 0; ALADIN-Unsup (--lambda-con 0) needs --lambda-rec > 0")
        if a.colour_weight is not None and not 0 <= a.colour_weight < 1:
            raise DataError("--colour-weight must be in [0, 1)")
        if a.test_sources and not a.val_sources:
            raise DataError("--test-sources needs --val-sources: with whole sources held out for testing, "
                            "validation must be out of domain too")
        standardise = {"fit": True, "off": False, None: None}[a.val_standardise]
        start = self.base.search if self.base is not None else SearchVector()
        self.search = start.overridden(a.embedding, a.colour_weight, standardise)
        self.config["search"] = self.search.record()
        if self.search.embedding == "projection" and not self._head_trained():
            raise DataError("with --loss-on style or only reconstruction the projection head is not trained; "
                            "validate and export the style code: --embedding style")

    def _head_trained(self) -> bool:
        """Whether any term reaches h(f): the contrastive ones do, on the projection."""
        a = self.args
        return a.loss_on == "projection" and bool(a.lambda_con or a.ssl_weight)

    def _plan_split(self, everything: list[Sample]) -> HeldOut:
        """This run's held-out projects, planned over every consensus level of the manifest.

        A fine-tune that names no split reuses its base's when that holds out projects of this manifest
        (the same data family, e.g. BAM-FG-Raw then its cleaned lists), so the base's test projects stay
        out of training; on other data (an artist's own folders) it plans afresh.
        """
        a = self.args
        named = (a.val, a.test, a.split_seed)
        base_split = self.base.training_set.held_out if self.base and self.base.training_set else None
        if named == (None, None, None) and base_split is not None and base_split.unit == "project":
            if {s.project_key for s in everything} & (base_split.val | base_split.test):
                log.info("reusing the split of %s: %s", self.base.name, base_split.how)
                return base_split
        val, test, seed = (d if v is None else v for v, d in zip(named, SPLIT_DEFAULTS))
        return plan_by_project(everything, val, test, seed)

    @staticmethod
    def _warn_of_reserved(train: list[Sample]) -> None:
        """The project's models never train on evaluation-only art; a user's manifest may still hold some.

        A warning, not a refusal: the guard is broad on purpose ("cards", "icons" in any folder name), and a
        researcher's own data may trip it. Fine-tuning on a user's own groups is not checked.
        """
        reserved = [s.path for s in train if reserved_reason(s.path)]
        if reserved:
            log.warning("%d training images look reserved for evaluation (icon themes, icon fonts, card decks), "
                        "e.g. %s; `python -m trainer.corpora select MANIFEST --out CLEAN.csv` drops them",
                        len(reserved), reserved[0])

    def _build_data(self) -> None:
        a = self.args
        everything = read_manifest(a.data)
        samples = at_consensus(everything, a.consensus)
        if a.val_sources:
            self.held_out = HeldOut.of_sources(a.val_sources, a.test_sources or [])
            self.split = split_by_source(samples, a.val_sources, a.test_sources or [])
        else:
            self.held_out = self._plan_split(everything)
            self.split = self.held_out.apply(samples)
        training = TrainingSet.of(self.split.train, self.held_out)
        self.training_set = training if self.base is None else training.on_top_of(self.base.training_set,
                                                                                   self.base.name)
        self.data_card = a.data_card or data_card_id(a.data)
        self.model_size = a.input_size
        if self.base is not None:
            self.model_size = self.base.net.config.input_size
        train = self.split.train
        self.cache = self._open_cache([s.path for s in train])
        if self.cache is not None and self.cache.failed:
            log.warning("%d training images cannot be decoded and are left out", len(self.cache.failed))
            train = [s for s in train if s.path not in self.cache.failed]
        self.train_samples = train
        if self.base is None:
            self._warn_of_reserved(train)
        groups = group_indices(train)
        self.sampler = GroupPairSampler(list(groups.values()), a.groups_per_batch, seed=a.seed,
                                        world_size=self.dist.world, rank=self.dist.rank, max_batches=a.steps,
                                        singles_per_batch=a.singles_per_batch)
        if self.sampler.skipped_groups and not a.singles_per_batch:
            log.warning("%d training groups have fewer than two images and are skipped (see --singles-per-batch)",
                        self.sampler.skipped_groups)
        self.dataset = PairDataset(train, groups, self.model_size, self.cache, views=a.ssl_weight > 0,
                                   augment=a.augment)
        self.decay_every = a.decay_every or self.sampler.batches_per_epoch
        self.val_samples = select_validation(self.split.val, a.val_max_images)
        self.val_pixels = None

    def _open_cache(self, paths: list[str]) -> PixelCache | None:
        mode = self.args.cache
        load = load_size_for(self.model_size)
        if mode == "off" or (mode == "auto" and len(paths) * load * load * 3 > CACHE_AUTO_LIMIT):
            return None
        folder = cache_root() if mode == "auto" else Path(mode)
        # Rank 0 builds the cache; the others wait, then map the same file.
        if self.dist.main:
            cache = PixelCache(folder, paths, load, workers=self.args.workers)
        if self.dist.world > 1:
            torch.distributed.barrier()
        if not self.dist.main:
            cache = PixelCache(folder, paths, load)
        return cache

    def _build_model(self) -> None:
        a = self.args
        if self.base is not None:
            net = self.base.net
        elif a.arch.startswith("resnet"):
            net = build_resnet(a.input_size, seed=a.seed, depth=a.arch)
        else:
            net = build_model(ModelConfig(variant=a.variant, input_size=a.input_size), seed=a.seed)
        self.net = net.to(self.device).train()
        self.objective = Objective(tau=a.tau, lambda_rec=a.lambda_rec, ssl_weight=a.ssl_weight,
                                   lambda_con=a.lambda_con)
        if self.objective.reconstruct and not isinstance(net, Aladin):
            raise DataError("the ResNet baseline has no decoder; use --lambda-rec 0")
        # A part no term reaches gets no gradient: freezing it keeps it out of the optimiser and out of
        # DDP's gradient buckets.
        if not self.objective.reconstruct and isinstance(net, Aladin):
            for part in (self.net.content_encoder, self.net.decoder):
                part.requires_grad_(False)
        if not self._head_trained():
            self.net.head.requires_grad_(False)
        module: nn.Module = TrainModule(self.net, a.loss_on)
        if self.dist.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            module = nn.parallel.DistributedDataParallel(module, device_ids=ids)
        self.module = module
        params = [p for p in self.net.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(params, lr=a.lr)
        self.scheduler = torch.optim.lr_scheduler.ExponentialLR(self.optimizer, gamma=a.lr_decay)
        self.amp_dtype = self._amp_dtype()
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None

    def _amp_dtype(self) -> torch.dtype | None:
        amp = self.args.amp
        if self.device.type != "cuda" or amp == "off":
            if amp in ("bf16", "fp16") and self.device.type != "cuda":
                log.warning("--amp %s needs CUDA; training in float32", amp)
            return None
        if amp == "auto":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if amp == "bf16" else torch.float16

    def autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast("cuda", dtype=self.amp_dtype)

    def holdout(self) -> dict | None:
        """The sources kept out of training and their image counts, or ``None`` for a group split."""
        if not self.args.val_sources:
            return None
        return {"val_sources": self.args.val_sources, "test_sources": self.args.test_sources or [],
                "val_images": len(self.split.val), "test_images": len(self.split.test),
                "train_sources": sorted({s.source for s in self.train_samples} - {""})}

    # -- checkpoints -----------------------------------------------------------------------------------

    def state(self) -> dict:
        arch = {"arch": "resnet" if isinstance(self.net, ResNetStyle) else "aladin",
                "variant": self.net.config.variant, "input_size": self.net.config.input_size}
        return {"step": self.step, "model": self.net.state_dict(), "model_config": arch,
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler is not None else None,
                "sampler": self.sampler.state_dict(), "best": dict(self.best), "bad_evals": self.bad_evals,
                "first_eval": self.first_eval, "config": self.config, "data_card": self.data_card,
                "training_set": self.training_set.record(), "torch_rng": torch.get_rng_state()}

    def save(self, name: str) -> None:
        if self.dist.main:
            save_checkpoint(self.out / name, self.state())

    def _resume(self, path: Path) -> None:
        state = load_checkpoint(path)
        differ = changed_settings(state["config"], self.config)
        if differ:
            raise CheckpointError(f"{path}: cannot resume with changed " + ", ".join(differ))
        self.net.load_state_dict(state["model"])
        try:
            self.optimizer.load_state_dict(state["optimizer"])
        except ValueError as exc:
            raise CheckpointError(f"{path}: optimiser state does not fit this run ({exc})") from exc
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.sampler.load_state_dict(state["sampler"])
        self.step = state["step"]
        self.best, self.bad_evals = state["best"], state["bad_evals"]
        self.first_eval = state.get("first_eval")
        torch.set_rng_state(state["torch_rng"])
        log.info("resumed %s at step %d", path, self.step)

    # -- validation ------------------------------------------------------------------------------------

    def validate(self) -> dict | None:
        """Validation P@k through the app's embedding path (rank 0 only)."""
        if not self.dist.main or not self.val_samples:
            return None
        info = self.search.model_info("validation", self.net.config)
        if self.val_pixels is None:
            pixels, kept, errors = decode_for_eval([s.path for s in self.val_samples],
                                                   self.search.decode_size(self.model_size),
                                                   workers=self.args.workers, alpha=info.reads_alpha)
            self.val_pixels = pixels
            self.val_labels = np.array([self.val_samples[i].group for i in kept])
        embedder = Embedder(LoadedModel(self.net, info, None, "training", ""), device=str(self.device))
        try:
            raw = raw_in_batches(embedder, self.val_pixels)
        finally:
            self.net.train()
        vectors, _ = finish(embedder, raw, "fit" if self.search.standardise else "off")
        return retrieval_metrics(vectors, self.val_labels)

    # -- the loop --------------------------------------------------------------------------------------

    def _loader(self) -> DataLoader:
        # Cached pixels only need a crop and a flip: worker processes would cost more than they save.
        workers = self.args.workers
        if workers is None:
            workers = 0 if self.cache is not None else plan(device=self.device.type).decoders
        return DataLoader(self.dataset, batch_sampler=self.sampler, num_workers=workers, collate_fn=collate,
                          pin_memory=self.device.type == "cuda", persistent_workers=False,
                          multiprocessing_context="spawn" if workers else None)

    def _writer(self):
        if self.args.tensorboard == "off" or not self.dist.main:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            return None
        return SummaryWriter(str(self.out / "tensorboard"))

    def _log(self, row: dict, writer) -> None:
        if not self.dist.main:
            return
        with open(self.out / "metrics.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")
        if writer is not None:
            for key, value in row.items():
                if isinstance(value, (int, float)) and key != "step":
                    writer.add_scalar(key, value, row["step"])

    def _evaluate_and_decide(self, writer) -> bool:
        """Validate, keep the best checkpoint, and say whether to stop early (same answer on all ranks)."""
        metrics = self.validate()
        stop = False
        if metrics is not None:
            self.last_eval = metrics
            if self.first_eval is None:
                self.first_eval = metrics
            self._log({"step": self.step, **{f"val/{k}": v for k, v in metrics.items()}}, writer)
            self.progress.validated(self.step, metrics)
            if metrics["P@1"] > self.best["P@1"]:
                self.best = {"P@1": metrics["P@1"], "step": self.step}
                self.bad_evals = 0
                self.save("best.pt")
            else:
                self.bad_evals += 1
                stop = bool(self.args.patience) and self.bad_evals >= self.args.patience
        return distributed.broadcast_flag(stop, self.dist)

    def _out_of_time(self, started: float) -> bool:
        """Same answer on every rank, so no rank waits in a collective for one that stopped."""
        if not self.args.max_minutes:
            return False
        return distributed.broadcast_flag(time.time() - started > 60 * self.args.max_minutes, self.dist)

    def _input(self, images: torch.Tensor) -> torch.Tensor:
        return normalise(images.to(self.device, non_blocking=True), self.net.config.mean, self.net.config.std)

    def fit(self) -> dict | None:
        a = self.args
        if self.dist.main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.json").write_text(json.dumps({**self.config, "data_card": self.data_card,
                                                              "world_size": self.dist.world,
                                                              "split": self.held_out.record()}, indent=1))
        self.progress = Progress(a.progress_json if self.dist.main else None, a.steps, self.step, a.max_minutes)
        try:
            return self._fit()
        finally:
            self.progress.close()

    def _fit(self) -> dict | None:
        a = self.args
        writer = self._writer()
        local_batch = self.sampler.batch_size // self.dist.world
        accumulate = self.dist.world > 1 or 0 < a.chunk_size < local_batch
        chunk = a.chunk_size if 0 < a.chunk_size < local_batch else local_batch
        if self.step == 0 and (a.eval_every or a.patience):
            self._evaluate_and_decide(writer)
        started, seen, stopped_early = time.time(), 0, False
        from tqdm import tqdm

        with tqdm(total=a.steps, initial=self.step, unit="step", disable=None if self.dist.main else True,
                  file=sys.stderr) as bar:
            for images, labels, views in self._loader():
                x = self._input(images)
                v = self._input(views) if views is not None else None
                labels = labels.to(self.device, non_blocking=True)
                if accumulate:
                    losses = accumulated_step(self.module, x, labels, self.objective, chunk, self.autocast,
                                              self.scaler, views=v)
                else:
                    losses = plain_step(self.module, x, labels, self.objective, self.autocast, self.scaler, views=v)
                if self.scaler is not None:
                    self.scaler.step(self.optimizer)
                    self.scaler.update()
                else:
                    self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
                self.step += 1
                self.sampler.next_batch = self.step
                if self.step % self.decay_every == 0:
                    self.scheduler.step()
                seen += len(x) * self.dist.world
                bar.update(1)
                bar.set_postfix(loss=f"{losses.total:.4f}", refresh=False)
                if self.step % a.log_every == 0 or self.step == a.steps:
                    row = {"step": self.step, **{f"loss/{k}": v for k, v in asdict(losses).items()},
                           "lr": self.scheduler.get_last_lr()[0],
                           "images_per_s": seen / max(time.time() - started, 1e-9),
                           "peak_rss_mb": _peak_rss_mb()}
                    if self.device.type == "cuda":
                        row["cuda_peak_mb"] = torch.cuda.max_memory_allocated(self.device) / 2**20
                    self._log(row, writer)
                    self.progress.step(self.step, losses.total)
                if a.eval_every and self.step % a.eval_every == 0 and self.step < a.steps:
                    if self._evaluate_and_decide(writer):
                        stopped_early = True
                        break
                if a.checkpoint_every and self.step % a.checkpoint_every == 0:
                    self.save("last.pt")
                if self._out_of_time(started):
                    log.info("stopping at step %d: --max-minutes %s reached", self.step, a.max_minutes)
                    break
        if not stopped_early:
            self._evaluate_and_decide(writer)
        self.save("last.pt")
        if writer is not None:
            writer.close()
        summary = None
        if self.dist.main:
            summary = {"steps": self.step, "stopped_early": stopped_early, "best": self.best,
                       "first_val": self.first_eval, "last_val": self.last_eval,
                       "skipped_groups": self.sampler.skipped_groups, "train_images": len(self.train_samples),
                       "holdout": self.holdout(), "split": self.held_out.how,
                       "seconds": round(time.time() - started, 1), "peak_rss_mb": round(_peak_rss_mb(), 1)}
            (self.out / "summary.json").write_text(json.dumps(summary, indent=1))
            self.progress.done(self.step, summary)
        distributed.teardown()
        return summary
