"""Training checkpoints: everything needed to continue a run exactly.

A checkpoint holds the network, optimiser, LR scheduler, AMP scaler, sampler
position, step, early-stopping state and the run's configuration. It holds
only tensors and plain Python values, so it loads with ``weights_only=True``
and a checkpoint from elsewhere cannot run code.
"""

from __future__ import annotations

from pathlib import Path

import torch

from core.files import atomic_write
from core.model import Aladin, ModelConfig, build_model
from trainer.errors import CheckpointError

FORMAT = "aladin-trainer-checkpoint"
VERSION = 1


def save_checkpoint(path: str | Path, state: dict) -> Path:
    """Write atomically: a crash mid-write leaves the previous checkpoint intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as fh:
        torch.save({"format": FORMAT, "version": VERSION, **state}, fh)
    return path


def load_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged pickle/zip
        raise CheckpointError(f"{path}: damaged or unreadable checkpoint ({exc})") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an ALADIN trainer checkpoint")
    if state.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {state.get('version')} is not supported")
    return state


def net_from_checkpoint(state: dict) -> Aladin:
    """Rebuild the network a checkpoint holds (its own architecture, whatever the run's flags said)."""
    from trainer.resnet import build_resnet

    arch = state["model_config"]
    if arch.get("arch") == "resnet":
        net = build_resnet(arch["input_size"], depth=arch["variant"])
    else:
        net = build_model(ModelConfig(variant=arch["variant"], input_size=arch["input_size"]))
    try:
        net.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint weights do not match {arch.get('arch', 'aladin')} "
                              f"{arch['variant']}") from exc
    return net.eval()
