"""The user's own models: ``<data dir>/models/<name>.safetensors``, each with a card ``<name>.json``.

The card says where a model came from: its base model, the groups it learnt (names and
counts), the held-out figures before and after, the date. The Model menu lists these models
beside the bundled one, so an earlier model is always one click away. No Qt here; every
function touches the disk, so the app calls them in a worker.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from core.files import atomic_path, write_text_atomic
from core.paths import data_dir

from app.teach.pipeline import TeachError, TeachOutcome

MODEL_SUFFIX = ".safetensors"
CARD_SUFFIX = ".json"
# A model's name is its file name: letters, digits, spaces, dots, dashes and underscores, not starting with a dot.
NAME_PATTERN = re.compile(r"[\w][\w .-]{0,79}")


@dataclass(frozen=True)
class SavedModel:
    """A model in the models folder, with its card (empty when it has none)."""

    path: Path
    name: str
    card: dict = field(default_factory=dict)


def models_dir() -> Path:
    """Where taught models are kept."""
    return data_dir() / "models"


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a model file, or None when it can."""
    if not NAME_PATTERN.fullmatch(name):
        return ("A model name has 1 to 80 letters, digits, spaces, dots, dashes or underscores, "
                "and does not start with a dot or a space.")
    return None


def saved_models() -> list[SavedModel]:
    """Every model file in the models folder, by name, with its card."""
    folder = models_dir()
    found = []
    for path in sorted(folder.glob(f"*{MODEL_SUFFIX}")) if folder.is_dir() else []:
        try:
            card = json.loads(path.with_suffix(CARD_SUFFIX).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            card = {}
        found.append(SavedModel(path, str(card.get("name") or path.stem), card if isinstance(card, dict) else {}))
    return found


def check_free(name: str) -> Path:
    """The path a model of this name gets.

    Raises:
        TeachError: a model of that name is there already.
    """
    target = models_dir() / f"{name}{MODEL_SUFFIX}"
    if target.exists():
        raise TeachError(f"a model named '{name}' exists already in {target.parent}; choose another name")
    return target


def keep(outcome: TeachOutcome) -> Path:
    """Copy the run's model into the models folder, with its card; returns the kept model's path.

    The card is written first and the model file last, each atomically: a crash leaves
    either nothing listed or a complete model.

    Raises:
        TeachError: a model of that name is there already, or the folder cannot be written.
    """
    target = check_free(outcome.plan.name)
    folder = target.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_text_atomic(target.with_suffix(CARD_SUFFIX), json.dumps(card(outcome), indent=1))
        with atomic_path(target) as tmp:
            shutil.copyfile(outcome.model, tmp)
    except OSError as exc:
        raise TeachError(f"cannot save the model in {folder}: {exc.strerror or exc}") from exc
    return target


def card(outcome: TeachOutcome) -> dict:
    """The model card: what the model was taught, from what, and how it measured on images it never saw."""
    plan = outcome.plan
    counts = {s.name: s for s in outcome.splits}
    return {
        "name": plan.name,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "base_model": {"name": plan.base_name, "file": plan.base},
        "groups": [{"name": g.name, "kind": g.kind, "source": g.source, "images": len(g.paths or []),
                    "training": len(counts[g.name].training), "held_out": len(counts[g.name].held_out)}
                   for g in plan.groups],
        "training": {"steps": plan.steps, "seconds": round(outcome.seconds, 1)},
        "held_out": {"before": asdict(outcome.before), "after": asdict(outcome.after)},
    }
