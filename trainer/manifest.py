"""Group manifests: which image belongs to which style group.

Two sources give the same list of :class:`Sample` records:

* a CSV with a ``path,group`` header and optional columns ``consensus`` (the
  BAM-FG-C_N level, 1-5), ``source`` (where an image came from, for per-source
  figures), ``content`` (the id of the picture a procedurally stylised image
  was drawn from, so evaluation can tell a style match from a content match)
  and ``project`` (the BAM-FG / Behance project a cleaned sub-group was cut
  from: the unit train/validation/test splits are made of, see
  :mod:`trainer.splits`); relative paths are relative to the CSV's folder, so a
  data set can be moved as a whole;
* a folder with one sub-folder per group (an artist's own library), every
  image below a sub-folder belonging to that group.

A cleaned BAM-FG manifest lists an image once per consensus level, because
each level partitions the same images differently; :func:`at_consensus`
selects one level.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from core.files import atomic_write
from trainer.errors import DataError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
REQUIRED = ("path", "group")
OPTIONAL_TEXT = ("source", "content", "project")


@dataclass(frozen=True)
class Sample:
    path: str
    group: str
    consensus: int | None = None
    source: str = ""
    content: str = ""
    project: str = ""

    @property
    def project_key(self) -> str:
        """The unit splits keep together: the project column, else the group (its own project)."""
        return self.project or self.group


def read_manifest(source: str | Path) -> list[Sample]:
    """Samples from a manifest CSV or a folder of group sub-folders.

    Raises:
        DataError: the source is missing, has no ``path,group`` header, or a bad row.
    """
    source = Path(source)
    if source.is_dir():
        return read_folder(source)
    if not source.is_file():
        raise DataError(f"{source}: manifest not found (expected a CSV with path,group or a folder of groups)")
    try:
        with open(source, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in REQUIRED if c not in (reader.fieldnames or ())]
            if missing:
                raise DataError(f"{source}: manifest header lacks {', '.join(missing)} (found {reader.fieldnames}); "
                                "expected path,group[,consensus][,source][,content][,project]")
            has_consensus = "consensus" in reader.fieldnames
            samples = []
            for line, row in enumerate(reader, start=2):
                path, group = (row["path"] or "").strip(), (row["group"] or "").strip()
                if not path or not group:
                    raise DataError(f"{source}:{line}: empty path or group")
                consensus = None
                if has_consensus and (row["consensus"] or "").strip():
                    try:
                        consensus = int(row["consensus"])
                    except ValueError as exc:
                        raise DataError(f"{source}:{line}: consensus must be an integer 1-5") from exc
                resolved = Path(path) if Path(path).is_absolute() else source.parent / path
                text = {c: (row.get(c) or "").strip() for c in OPTIONAL_TEXT}
                samples.append(Sample(str(resolved), group, consensus, **text))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{source}: cannot read manifest ({exc})") from exc
    if not samples:
        raise DataError(f"{source}: manifest has no rows")
    return samples


def read_folder(root: Path) -> list[Sample]:
    """One group per immediate sub-folder; images in nested folders count for their top folder."""
    samples = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in sorted(sub.rglob("*")):
            if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
                samples.append(Sample(str(path), sub.name))
    if not samples:
        raise DataError(f"{root}: no images in sub-folders; each sub-folder of the data folder is one style group")
    return samples


def write_manifest(path: str | Path, samples: list[Sample], relative: bool = True) -> Path:
    """Write ``path,group[,consensus][,source][,content][,project]`` atomically, paths relative to the CSV
    when possible.

    An optional column is written only when some sample has a value for it, so
    a plain ``path,group`` manifest stays plain.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with_consensus = any(s.consensus is not None for s in samples)
    text = [c for c in OPTIONAL_TEXT if any(getattr(s, c) for s in samples)]
    base = path.parent.resolve()
    with atomic_write(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "group"] + (["consensus"] if with_consensus else []) + text)
        for s in samples:
            p = Path(s.path)
            if relative:
                try:
                    p = p.resolve().relative_to(base)
                except ValueError:
                    pass
            row = [p.as_posix(), s.group]
            if with_consensus:
                row.append("" if s.consensus is None else s.consensus)
            writer.writerow(row + [getattr(s, c) for c in text])
    return path


def at_consensus(samples: list[Sample], level: int | None) -> list[Sample]:
    """Rows of one BAM-FG-C_N level; ``None`` keeps every row (and requires one level only)."""
    levels = {s.consensus for s in samples}
    if level is None:
        if len(levels - {None}) > 1:
            raise DataError(f"the manifest holds several consensus levels {sorted(levels - {None})}; "
                            "choose one with --consensus")
        return samples
    chosen = [s for s in samples if s.consensus == level]
    if not chosen:
        raise DataError(f"no rows at consensus level {level}; the manifest has levels {sorted(levels - {None})}")
    return chosen


def group_indices(samples: list[Sample]) -> dict[str, list[int]]:
    """Sample indices per group, groups in first-seen order."""
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        groups.setdefault(s.group, []).append(i)
    return groups


def data_card_id(source: str | Path) -> str:
    """The id recorded in exported models: a data card's ``id``, else one derived from the manifest.

    A ``datacard.json`` (or ``<manifest>.card.json``) with an ``id`` wins. A
    corpus from :mod:`trainer.corpora` (a ``sources.json`` beside the
    manifest) is described by ``resources/models/DATA.md``. Either way the id
    ends with a hash of the manifest's rows, so it pins the exact file list.
    """
    source = Path(source)
    folder = source if source.is_dir() else source.parent
    for card in (source.with_suffix(".card.json"), folder / "datacard.json"):
        if card.is_file():
            try:
                card_id = json.loads(card.read_text(encoding="utf-8")).get("id")
            except (OSError, ValueError, AttributeError):
                card_id = None
            if card_id:
                return str(card_id)
    digest = hashlib.sha256()
    for s in read_manifest(source):
        digest.update(f"{Path(s.path).name}\t{s.group}\t{s.consensus}\n".encode())
    if (folder / "sources.json").is_file():
        return f"corpus {folder.name} (resources/models/DATA.md), manifest {digest.hexdigest()[:12]}"
    return f"manifest:{source.name}:{digest.hexdigest()[:12]}"
