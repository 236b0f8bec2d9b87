"""Parsers of the library commands: ``aladin index``, ``remove``, ``search``, ``moodboard``, ``status``,
``clusters``, ``duplicates``, ``repair``.

The commands themselves live in :mod:`core.cli.library_commands`, imported only when one
runs: building the parser must not load torch or SQLAlchemy, because ``aladin --help``,
``aladin IMAGE`` handing images to a running window, and every spawned decoder process
(which re-imports the console script) build or import it without running a command.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from core.cli.options import add_model_options


def _command(name: str) -> Callable[[argparse.Namespace], int]:
    """The library command ``name``, loaded when it runs (see the module docstring)."""
    def run(args: argparse.Namespace) -> int:
        from core.cli import library_commands

        return getattr(library_commands, name)(args)

    return run


def register(sub: argparse._SubParsersAction) -> None:

    p = sub.add_parser("index", help="add art folders to the library and bring it up to date")
    p.add_argument("folders", nargs="*", type=Path, metavar="FOLDER",
                   help="folders to add or rescan (default: rescan every folder in the library)")
    _add_library_option(p)
    add_model_options(p)
    p.add_argument("--switch-model", action="store_true",
                   help="allow re-embedding the whole library with a different model")
    p.add_argument("--batch-size", type=int, default=32, metavar="N")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="decoding processes (default: cores - 1, up to 8, with a GPU; about a fifth of the "
                        "cores when the model runs on the CPU, which gets the rest; 0 decodes in-process)")
    p.set_defaults(func=_command("run_index"))

    p = sub.add_parser("remove", help="remove a folder (and its images) from the library")
    p.add_argument("folder", type=Path, metavar="FOLDER")
    _add_library_option(p)
    p.set_defaults(func=_command("run_remove"))

    p = sub.add_parser("search", help="find images in the style of one image or a moodboard of several")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--negative", nargs="+", action="extend", default=[], metavar="IMAGE",
                   help="images whose style the results should be less like")
    p.add_argument("--weights", default=None, metavar="W1,W2,...",
                   help="one weight per IMAGE (default: all 1)")
    _add_search_options(p)
    p.set_defaults(func=_command("run_search"))

    p = sub.add_parser("moodboard", help="saved moodboards: create, list, show, rename, delete, search")
    msub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    m = msub.add_parser("create", help="save (or replace) a moodboard")
    m.add_argument("name")
    m.add_argument("images", nargs="+", metavar="IMAGE")
    m.add_argument("--negative", nargs="+", action="extend", default=[], metavar="IMAGE")
    m.add_argument("--weights", default=None, metavar="W1,W2,...")
    _add_library_option(m)
    m.set_defaults(func=_command("run_moodboard_create"))
    m = msub.add_parser("list", help="list saved moodboards")
    _add_library_option(m)
    m.set_defaults(func=_command("run_moodboard_list"))
    m = msub.add_parser("show", help="show a moodboard's images")
    m.add_argument("name")
    m.add_argument("--json", action="store_true")
    _add_library_option(m)
    m.set_defaults(func=_command("run_moodboard_show"))
    m = msub.add_parser("rename", help="rename a moodboard")
    m.add_argument("name")
    m.add_argument("new_name")
    _add_library_option(m)
    m.set_defaults(func=_command("run_moodboard_rename"))
    m = msub.add_parser("delete", help="delete a moodboard")
    m.add_argument("name")
    _add_library_option(m)
    m.set_defaults(func=_command("run_moodboard_delete"))
    m = msub.add_parser("search", help="search with a saved moodboard")
    m.add_argument("name")
    _add_search_options(m)
    m.set_defaults(func=_command("run_moodboard_search"))

    p = sub.add_parser("status", help="roots, counts, failures, model and index health")
    _add_library_option(p)
    p.add_argument("--failures", action="store_true", help="list every file that could not be indexed")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_command("run_status"))

    p = sub.add_parser("clusters", help="group the library into style clusters, each with its most typical images")
    p.add_argument("--k", type=int, default=None, metavar="N",
                   help="how many clusters (default: about the square root of half the images, at most 64)")
    p.add_argument("--recompute", action="store_true",
                   help="cluster again even when the saved clusters are still usable")
    p.add_argument("--json", action="store_true", help="print a JSON object with a 'clusters' list")
    _add_library_option(p)
    add_model_options(p)
    p.set_defaults(func=_command("run_clusters"))

    p = sub.add_parser("duplicates", help="groups of images that show the same picture: exact copies, and "
                                          "resized, re-encoded, slightly cropped or rotated ones")
    p.add_argument("--json", action="store_true", help="print a JSON object with a 'groups' list")
    _add_library_option(p)
    add_model_options(p)
    p.set_defaults(func=_command("run_duplicates"))

    p = sub.add_parser("repair", help="check the library database and recover what is readable from a damaged one")
    _add_library_option(p)
    p.set_defaults(func=_command("run_repair"))


def _add_library_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--library", type=Path, default=None, metavar="DIR",
                   help="library folder (default: $ALADIN_LIBRARY or the user data folder)")


def _add_search_options(p: argparse.ArgumentParser) -> None:

    _add_library_option(p)
    add_model_options(p)
    p.add_argument("-k", type=int, default=20, help="how many results (default 20)")
    p.add_argument("--root", action="append", default=None, metavar="DIR",
                   help="only results under this library folder (repeatable)")
    p.add_argument("--folder", default=None, metavar="DIR", help="only results under this sub-folder")
    p.add_argument("--exclude-query-folder", action="store_true",
                   help="leave out results in the same folder as a query image")
    p.add_argument("--min-score", default=None, metavar="SCORE",
                   help="only results with at least this calibrated score: 0-100, the percentile of the result's "
                        "similarity among the library's own nearest-neighbour similarities, or a label "
                        "('very close' = 90, 'close' = 75, 'related' = 40)")
    p.add_argument("--no-csls", dest="csls", action="store_false",
                   help="rank by plain cosine similarity instead of the hubness-corrected CSLS score")
    p.add_argument("--no-expand", dest="expand", action="store_false",
                   help="rank every result by the query alone, not the results after the first five by the "
                        "query and those five together")
    p.add_argument("--json", action="store_true", help="print a JSON object with a 'results' list")
