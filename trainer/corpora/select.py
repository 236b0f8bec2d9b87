"""Training manifests assembled from built corpora, with the reserved guard applied again.

A corpus built before the guard learnt a new reserved kind (icon fonts, 2026-11-29) still holds
those rows; rebuilding takes tens of minutes, so the rows are dropped here instead. Capping a
source keeps one generated source (the procedural treatments, 62 % of the default corpus) from
filling most of every batch, and lets a corpus pack fit a small upload.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from trainer.corpora.reserved import reserved_reason
from trainer.errors import DataError
from trainer.manifest import Sample, read_manifest


@dataclass
class Selection:
    samples: list[Sample]
    reserved: int = 0
    capped: Counter = field(default_factory=Counter)
    repeated: int = 0


def parse_caps(items: list[str]) -> dict[str, int]:
    """``["procedural=8"]`` -> ``{"procedural": 8}``: at most N images per group of that source."""
    caps = {}
    for item in items:
        source, _, count = item.partition("=")
        if not source or not count.isdigit() or int(count) < 2:
            raise DataError(f"--cap {item!r}: expected SOURCE=N with N at least 2 (a group needs two images)")
        caps[source] = int(count)
    return caps


def select(manifests: list[Path], caps: dict[str, int] | None = None) -> Selection:
    """The rows of ``manifests`` in order, without reserved rows, repeats or images past a source's cap.

    Rows are kept in manifest order, so the first N images of a capped group are the ones kept and
    the same inputs always give the same manifest (and data card id).
    """
    caps = caps or {}
    result = Selection([])
    seen: set[str] = set()
    per_group: Counter = Counter()
    for manifest in manifests:
        for sample in read_manifest(manifest):
            if sample.path in seen:
                result.repeated += 1
                continue
            seen.add(sample.path)
            if reserved_reason(sample.path):
                result.reserved += 1
                continue
            cap = caps.get(sample.source)
            if cap is not None and per_group[sample.group] >= cap:
                result.capped[sample.source] += 1
                continue
            per_group[sample.group] += 1
            result.samples.append(sample)
    return result
