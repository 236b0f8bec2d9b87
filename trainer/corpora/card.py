"""The data card's tables, generated from a build's ``sources.json``.

Counts, versions and licences in DATA.md come from the build that produced
the corpus, not from memory: ``python -m trainer.corpora card data/corpus``
prints the tables to paste between the card's prose.
"""

from __future__ import annotations

import json
from pathlib import Path


def render_card(report: dict) -> str:
    """Markdown tables: totals, per source (with why it is style-coherent), per package."""
    totals = report["totals"]
    lines = [f"Totals: **{totals['groups']} groups, {totals['images']} images** "
             f"(build wall time {totals['seconds'] / 60:.1f} min; settings {json.dumps(report['settings'])}).", "",
             "| source | groups | images | why its groups are style-coherent |", "|---|---:|---:|---|"]
    for name, src in report["sources"].items():
        lines.append(f"| {name} | {src['groups']} | {src['images']} | {src['why']} |")
    lines += ["", "| source | package | version | licence (from /usr/share/doc/PKG/copyright) | groups | images |",
              "|---|---|---|---|---:|---:|"]
    for name, src in report["sources"].items():
        for pkg in src["packages"].values():
            if not pkg["version"]:
                continue
            lines.append(f"| {name} | {pkg['name']} | {pkg['version']} | {pkg['licence']} | {pkg['groups']} | {pkg['images']} |")
    if report.get("skipped"):
        lines += ["", "Skipped (build_log.jsonl has one line each): " +
                  ", ".join(f"{reason}: {count}" for reason, count in sorted(report["skipped"].items(), key=lambda kv: -kv[1]))]
    return "\n".join(lines) + "\n"


def install_command() -> str:
    """The apt-get line that installs every package the sources read, plus the SVG renderer."""
    from trainer.corpora.sources import SOURCES

    names = sorted({p for s in SOURCES for p in s.packages if not p.startswith("pypi:")} | {"librsvg2-bin"})
    return "apt-get install --no-install-recommends " + " ".join(names)


def card_from(path: Path) -> str:
    """``path`` is a corpus folder or its sources.json."""
    path = Path(path)
    if path.is_dir():
        path = path / "sources.json"
    return render_card(json.loads(path.read_text(encoding="utf-8")))
