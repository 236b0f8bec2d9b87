"""The style groups a user teaches: where their images come from, what is missing, what is held out.

A group is a library folder (its indexed images) or a saved moodboard (its positive images).
Training needs :data:`MIN_GROUPS` groups of :data:`MIN_IMAGES` images. Part of every group,
:data:`HOLDOUT_SHARE` chosen by a seeded shuffle, never trains: the model is measured on those
images before and after, so the figures say how it does on art it has not seen.

Nothing here imports Qt: the dialog shows what these functions decide.
"""

from __future__ import annotations

import csv
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import QueryError

FOLDER = "folder"
MOODBOARD = "moodboard"
MIN_GROUPS = 2
MIN_IMAGES = 4
HOLDOUT_SHARE = 0.25
# A held-out image is scored only when another image of its group is held out beside it, and a
# group trains only on pairs of its images: so at least two of each side, which MIN_IMAGES allows.
MIN_HELD_OUT = 2
MIN_TRAINING = 2
SPLIT_SEED = 0


@dataclass(eq=False)
class Group:
    """One style to teach (compared by identity: the dialog updates the very group it counted).

    Attributes:
        name: the label the trainer sees (unique within a session).
        kind: :data:`FOLDER` or :data:`MOODBOARD`.
        source: the folder's path, or the moodboard's name.
        paths: its images, sorted; None while they are being counted.
        error: why its images cannot be used (a folder outside the library, a moodboard that is gone).
    """

    name: str
    kind: str
    source: str
    paths: list[str] | None = None
    error: str | None = None


@dataclass(frozen=True)
class GroupSplit:
    """A group's images divided into those the model trains on and those it is measured on."""

    name: str
    training: list[str]
    held_out: list[str]


@dataclass
class Manifests:
    """The trainer's two group manifests (CSV ``path,group``) and the split they were written from."""

    training: Path
    held_out: Path
    splits: list[GroupSplit] = field(default_factory=list)


def group_images(library, kind: str, source: str) -> list[str]:
    """A group's images: a library folder's indexed ones, or a moodboard's positive ones that exist.

    Runs in a worker: it reads the library and checks files.

    Raises:
        QueryError: the folder is not in the library, or there is no such moodboard.
    """
    if kind == MOODBOARD:
        items = library.load_moodboard(source)
        return sorted({item.path for item in items if not item.negative and os.path.isfile(item.path)})
    folder = Path(source).resolve()
    if not any(folder.is_relative_to(root.path) for root in library.roots()):
        raise QueryError(f"{folder} is not in the library; add it (Add Folder) and let it index first")
    indexed = library.ids_under([str(folder)]) & set(library.vector_ids().tolist())
    return sorted(library.image_paths(sorted(indexed)).values())


def problems(groups: list[Group]) -> list[str]:
    """What stops training, one sentence each; empty when the groups can be taught.

    Groups still being counted are not judged yet (the caller waits for them).
    """
    found = [f"Group '{g.name}': {g.error}" for g in groups if g.error]
    if len(groups) < MIN_GROUPS:
        found.append(f"Add at least {MIN_GROUPS} groups ({len(groups)} so far): each a library folder "
                     "or a saved moodboard of one style.")
    for g in groups:
        if g.paths is not None and not g.error and len(g.paths) < MIN_IMAGES:
            found.append(f"Group '{g.name}' has {len(g.paths)} image{'s' * (len(g.paths) != 1)}; "
                         f"{MIN_IMAGES} are needed.")
    counted = [g for g in groups if g.paths]
    for i, a in enumerate(counted):
        for b in counted[i + 1:]:
            shared = len(set(a.paths) & set(b.paths))
            if shared:
                found.append(f"Groups '{a.name}' and '{b.name}' share {shared} image{'s' * (shared != 1)}; "
                             "an image can teach only one style.")
    return found


def split_group(name: str, paths: list[str], seed: int = SPLIT_SEED) -> GroupSplit:
    """Hold out :data:`HOLDOUT_SHARE` of a group (at least :data:`MIN_HELD_OUT`, leaving :data:`MIN_TRAINING`).

    The shuffle is seeded by ``seed`` and the group's name over its sorted paths, so the same
    group always holds out the same images, whatever order they came in or which groups are beside it.
    """
    order = sorted(paths)
    random.Random(f"{seed}:{name}").shuffle(order)
    held = min(max(MIN_HELD_OUT, round(HOLDOUT_SHARE * len(order))), len(order) - MIN_TRAINING)
    return GroupSplit(name, sorted(order[held:]), sorted(order[:held]))


def write_manifests(groups: list[Group], folder: Path, seed: int = SPLIT_SEED) -> Manifests:
    """Split every group and write ``training.csv`` and ``held-out.csv`` in ``folder``."""
    splits = [split_group(g.name, g.paths or [], seed) for g in groups]
    out = Manifests(folder / "training.csv", folder / "held-out.csv", splits)
    for path, part in ((out.training, "training"), (out.held_out, "held_out")):
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["path", "group"])
            writer.writerows((image, s.name) for s in splits for image in getattr(s, part))
    return out


def unique_name(name: str, taken: list[str]) -> str:
    """``name``, or ``name (2)``, ``name (3)``... when a group of that name is already there."""
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name} ({n})"
    return candidate
