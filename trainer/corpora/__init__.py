"""Build an openly licensed style corpus from art installed by Debian and PyPI packages.

``python -m trainer.corpora build --out data/corpus`` writes images grouped by
style plus ``manifest.csv`` (path,group,source,content) for ``python -m trainer``.
Freedesktop icon themes, icon fonts and playing-card decks are never used: they are
reserved for evaluation (:mod:`trainer.corpora.reserved`). The data card is
resources/models/DATA.md.

The package imports nothing itself: the trainer asks :mod:`trainer.corpora.reserved` about its
rows, and that must not load the builder and every source adapter with it.
"""
