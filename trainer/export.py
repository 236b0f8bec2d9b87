"""``python -m trainer export CKPT OUT``: a checkpoint becomes the app's model file.

The model file carries the weights, which vector to index (f or h(f)), the
training data card id, and per-dimension standardisation fitted on the
training split's raw style codes: the team measured that standardisation lifts
retrieval a lot, and fitting it on training data (not on a user's library)
keeps the shipped model's behaviour fixed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from core.embedder import Embedder
from core.modelfile import LoadedModel, ModelInfo, PostProcess, save_model
from core.model import Aladin
from trainer.checkpoint import load_checkpoint, net_from_checkpoint
from trainer.data import decode_for_eval
from trainer.errors import CheckpointError, DataError
from trainer.evaluate import raw_in_batches
from trainer.manifest import at_consensus, read_manifest
from trainer.splits import split_by_group


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write the app's model file from a training checkpoint")
    p.add_argument("checkpoint", type=Path, metavar="CKPT")
    p.add_argument("out", type=Path, metavar="OUT.safetensors")
    p.add_argument("--name", default=None, help="model name shown in the app (default: OUT's stem)")
    p.add_argument("--embedding", choices=("style", "projection"), default=None,
                   help="vector the app indexes (default: the run's --embedding)")
    p.add_argument("--colour-weight", type=float, default=0.0, metavar="W",
                   help="fuse the HSV colour histogram into the search vector with weight W in [0, 1)")
    p.add_argument("--no-standardise", dest="standardise", action="store_false",
                   help="do not fit per-dimension standardisation of style codes")
    p.add_argument("--fit-on", type=Path, default=None, metavar="MANIFEST",
                   help="fit standardisation on these images (default: the run's training split)")
    p.add_argument("--fit-max", type=int, default=5000, help="at most this many images for the fit")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--workers", type=int, default=None)
    p.set_defaults(func=run)


def training_paths(config: dict, fit_on: Path | None) -> list[str]:
    if fit_on is not None:
        return [s.path for s in read_manifest(fit_on)]
    data = Path(config["data"])
    if not data.exists():
        raise DataError(f"the run's training data {data} is not available to fit standardisation; "
                        "pass --fit-on MANIFEST or --no-standardise")
    samples = at_consensus(read_manifest(data), config.get("consensus"))
    return [s.path for s in split_by_group(samples, config["val"], config["test"], config["split_seed"]).train]


def export(checkpoint: Path, out: Path, name: str | None = None, embedding: str | None = None,
           standardise: bool = True, fit_on: Path | None = None, fit_max: int = 5000,
           device: str = "auto", workers: int | None = None, colour_weight: float = 0.0) -> Path:
    if not 0 <= colour_weight < 1:
        raise DataError("--colour-weight must be in [0, 1)")
    state = load_checkpoint(checkpoint)
    config = state["config"]
    net = net_from_checkpoint(state)
    if not isinstance(net, Aladin):
        raise CheckpointError(f"{checkpoint}: a ResNet baseline is not an app model; evaluate it with "
                              "eval --model CKPT or fuse it with eval --fuse-with CKPT")
    info = ModelInfo(name=name or out.stem, config=net.config,
                     embedding=embedding or config.get("embedding", "style"), trained=True,
                     training_data=state.get("data_card", ""),
                     notes={"checkpoint": str(checkpoint), "step": state["step"],
                            "best_val": state.get("best"), "tau": config.get("tau"),
                            "lambda_rec": config.get("lambda_rec"), "lr": config.get("lr"),
                            "groups_per_batch": config.get("groups_per_batch")},
                     # A decoder the run never trained (lambda 0) is random weights: not worth shipping.
                     search_only=not config.get("lambda_rec"))
    post = None
    if standardise and info.embedding == "style":
        paths = training_paths(config, fit_on)
        if len(paths) > fit_max:
            paths = [paths[i] for i in np.linspace(0, len(paths) - 1, fit_max).round().astype(int)]
        pixels, _, errors = decode_for_eval(paths, net.config.input_size, workers=workers)
        embedder = Embedder(LoadedModel(net, info, None, str(checkpoint), ""), device=device, which="style")
        post = PostProcess.fit(raw_in_batches(embedder, pixels))
        info.notes["standardisation"] = f"fitted on {len(pixels)} training images ({len(errors)} unreadable)"
    else:
        info.notes["standardisation"] = "none"
    info.colour_weight = colour_weight
    return save_model(out, net.cpu(), info, post)


def run(args: argparse.Namespace) -> int:
    path = export(args.checkpoint, args.out, args.name, args.embedding, args.standardise, args.fit_on,
                  args.fit_max, args.device, args.workers, args.colour_weight)
    print(f"wrote {path}")
    return 0
