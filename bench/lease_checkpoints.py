"""Bring a GPU lease's trained networks back through its file limits, and make them whole again here.

A lease returns at most 8 files of 16 MiB (64 MiB in all; /work/.library/device/README.md). A full ALADIN-S
checkpoint is 13 MB of weights and ALADIN-L 86 MB, so the lease kept at most one best.pt of each S run and
none of L. Searching needs only the style encoder and the projection head: the content encoder and the
decoder serve the reconstruction term, and a run without it (lambda 0) never trained them. ``pack`` keeps
those two parts of every best.pt and last.pt (optimiser state dropped; L in half precision), in the order of
the runs given, split into files under the limit; ``unpack`` rebuilds a checkpoint from them that
``trainer export`` and ``trainer eval`` load, with the untrained parts set to a fixed seed's initial weights
(nothing that searches reads them).

    python bench/lease_checkpoints.py pack RUNS_DIR OUT_DIR --origin MANIFEST [--room-mb 52] [--runs A,B]
    python bench/lease_checkpoints.py unpack OUT_DIR/ckpt-*.pt --out runs/lease
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.model import ModelConfig, build_model  # noqa: E402
from core.modelfile import SEARCH_PARTS  # noqa: E402
from trainer.checkpoint import load_checkpoint, net_from_checkpoint, save_checkpoint  # noqa: E402

# training_set: the hashed groups the run trained on, which the model file records and the app checks libraries
# against; without it an export from the lease's checkpoint cannot find its training images either.
KEPT_STATE = ("step", "model_config", "best", "first_eval", "config", "data_card", "training_set")
FILE_LIMIT = 15 << 20  # under the lease's 16 MiB per file, with room for the pickle's own bytes


def slim(state: dict, half: bool) -> dict:
    """The checkpoint without optimiser state, and without the parts a run at lambda 0 never trained."""
    untrained = not state["config"].get("lambda_rec")
    model = {k: v for k, v in state["model"].items() if not untrained or k.startswith(SEARCH_PARTS)}
    if half:
        model = {k: v.half() if v.is_floating_point() else v for k, v in model.items()}
    return {**{k: state[k] for k in KEPT_STATE if k in state}, "model": model}


def _nbytes(tensors: dict) -> int:
    return sum(t.numel() * t.element_size() for t in tensors.values())


def _pieces(name: str, state: dict) -> list[tuple[str, dict]]:
    """One checkpoint as pieces under the file limit: the weights split by key, the rest in the first."""
    pieces, current = [], {}
    for key, tensor in state["model"].items():
        if current and _nbytes(current) + tensor.numel() * tensor.element_size() > FILE_LIMIT:
            pieces.append(current)
            current = {}
        current[key] = tensor
    pieces.append(current)
    meta = {k: v for k, v in state.items() if k != "model"}
    return [(f"{name}#{i}/{len(pieces)}", {**(meta if i == 0 else {}), "model": part})
            for i, part in enumerate(pieces)]


def pack(runs: Path, out: Path, origin: str, room: int, max_files: int, order: list[str] | None = None) -> list[str]:
    """Write ckpt-N.pt files into ``out``; return what was kept and what was left out, one line each."""
    folders = [runs / name for name in order] if order else sorted(p for p in runs.iterdir() if p.is_dir())
    bins: list[dict] = []
    report = []
    for folder in folders:
        best_step = None
        for which in ("best", "last"):
            path = folder / f"{which}.pt"
            if not path.is_file():
                continue
            state = load_checkpoint(path)
            if which == "best":
                best_step = state["step"]
            elif state["step"] == best_step:
                continue
            state["config"] = {**state["config"], "data": origin}
            small = slim(state, half=state["model_config"]["variant"] != "s")
            pieces = _pieces(f"{folder.name}-{which}", small)
            size = sum(_nbytes(p["model"]) for _, p in pieces)
            placed = _place(bins, pieces, room, max_files)
            report.append(f"{folder.name} {which} step {state['step']} best {state.get('best')} "
                          f"{size / 2**20:.1f} MB" + ("" if placed else " (left out: over the lease's file limits)"))
            if placed:
                room -= size
    out.mkdir(parents=True, exist_ok=True)
    for i, content in enumerate(bins):
        torch.save(content, out / f"ckpt-{i}.pt")
    return report


def _place(bins: list[dict], pieces: list[tuple[str, dict]], room: int, max_files: int) -> bool:
    """First-fit the pieces into the bins; all or none of one checkpoint's pieces."""
    if sum(_nbytes(p["model"]) for _, p in pieces) > room:
        return False
    trial = [dict(b) for b in bins]
    for name, piece in pieces:
        size = _nbytes(piece["model"])
        target = next((b for b in trial if sum(_nbytes(p["model"]) for p in b.values()) + size <= FILE_LIMIT),
                      None)
        if target is None:
            if len(trial) >= max_files:
                return False
            target = {}
            trial.append(target)
        target[name] = piece
    bins[:] = trial
    return True


def unpack(files: list[Path], out: Path) -> list[Path]:
    """Join the pieces and write one full checkpoint per name into ``out`` (NAME.pt)."""
    pieces: dict[str, dict[int, dict]] = {}
    counts: dict[str, int] = {}
    for file in files:
        for key, piece in torch.load(file, map_location="cpu", weights_only=True).items():
            name, index = key.rsplit("#", 1)
            i, n = (int(x) for x in index.split("/"))
            pieces.setdefault(name, {})[i] = piece
            counts[name] = n
    written = []
    for name, parts in sorted(pieces.items()):
        if len(parts) != counts[name]:
            print(f"{name}: {len(parts)} of {counts[name]} pieces came back; not rebuilt", file=sys.stderr)
            continue
        state = dict(parts[0])
        model = {k: v for i in sorted(parts) for k, v in parts[i]["model"].items()}
        state["model"] = model
        full = net_from_checkpoint({**state, "model": _initial(state)}).state_dict()
        full.update({k: v.float() if v.is_floating_point() else v for k, v in model.items()})
        written.append(save_checkpoint(out / f"{name}.pt", {**state, "model": full}))
    return written


def _initial(state: dict) -> dict:
    """The architecture's seed-0 initial weights, which stand in for the parts a run never trained."""
    arch = state["model_config"]
    return build_model(ModelConfig(variant=arch["variant"], input_size=arch["input_size"]), seed=0).state_dict()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack")
    p.add_argument("runs", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--origin", required=True, help="the manifest the pack was made from, for export's fit")
    p.add_argument("--room-mb", type=float, default=52)
    p.add_argument("--max-files", type=int, default=6)
    p.add_argument("--runs", dest="order", default="", help="run names in priority order (default: all, by name)")
    u = sub.add_parser("unpack")
    u.add_argument("files", type=Path, nargs="+")
    u.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "pack":
        order = [n for n in args.order.split(",") if n] or None
        for line in pack(args.runs, args.out, args.origin, int(args.room_mb * 2**20), args.max_files, order):
            print(line)
    else:
        print(json.dumps([str(p) for p in unpack(args.files, args.out)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
