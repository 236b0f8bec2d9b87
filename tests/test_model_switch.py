"""Switching a library to another model: search keeps the current model until every image has a new vector.

The new model's vectors are staged beside the current ones and swapped in with one transaction, so
a switch that is cancelled, or killed with ``kill -9``, leaves the library searchable on its model
and resumes where it stopped.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from core.embedder import Embedder
from core.errors import ModelMismatchError
from core.indexer import REEMBED, SWITCHED, index_folders
from core.library import DB_NAME, Library
from core.modelfile import load_model_file
from core.query import QueryItem, SearchFilters
from core.schema import SCHEMA_VERSION
from core.search import Searcher
from library_fixtures import make_tree, style_image, tiny_embedder, tiny_model_file

REPO = Path(__file__).resolve().parent.parent
STYLES, PER_STYLE = 4, 4
IMAGES = STYLES * PER_STYLE
# How far a vector finished from what the library stores may be from a fresh one: raw vectors are kept in
# half precision (core.schema.vector_blob).
STORED_ATOL = 1e-3


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """The library's model and the one it switches to."""
    folder = tmp_path_factory.mktemp("models")
    return tiny_embedder(folder, seed=3), tiny_embedder(folder, seed=11)


@pytest.fixture
def indexed(tmp_path, models):
    """A library of 16 images indexed with the first model, and its searcher."""
    old, _ = models
    paths = make_tree(tmp_path / "art", STYLES, PER_STYLE)
    lib = Library.open(tmp_path / "lib")
    list(index_folders(lib, [tmp_path / "art"], old, workers=0))
    yield lib, paths, Searcher(lib, old)
    lib.close()


def switch(lib, embedder, cancel=None, batch_size=4):
    """Drive a switch to ``embedder``'s model; returns every progress record."""
    return list(index_folders(lib, [], embedder, cancel, switch_model=True, workers=0, batch_size=batch_size))


def top(searcher, path: str, k: int = IMAGES) -> list[tuple[str, float]]:
    return [(r.path, round(r.score, 5)) for r in searcher.search([QueryItem(str(path))], SearchFilters(k=k))]


def staged_rows(lib) -> int:
    con = sqlite3.connect(lib.folder / DB_NAME)
    try:
        return con.execute("SELECT count(*) FROM staged_vectors").fetchone()[0]
    finally:
        con.close()


def test_search_answers_with_the_current_model_until_the_switch_commits(indexed, models):
    lib, paths, searcher = indexed
    old, new = models
    before = top(searcher, paths[0])
    assert len(before) == IMAGES - 1
    seen = []
    for progress in index_folders(lib, [], new, switch_model=True, workers=0, batch_size=4):
        seen.append(progress.phase)
        if progress.phase == REEMBED and progress.done:
            assert lib.model_record().checksum == old.model.checksum
            assert top(searcher, paths[0]) == before  # mid-switch: the same answer from the same vectors
    assert seen.count(SWITCHED) == 1 and seen.index(SWITCHED) > seen.index(REEMBED)
    assert lib.model_record().checksum == new.model.checksum and lib.pending_switch() is None
    assert staged_rows(lib) == 0 and lib.vector_count() == IMAGES
    with pytest.raises(ModelMismatchError):
        searcher.search([QueryItem(str(paths[0]))])  # the old searcher never ranks the new model's vectors
    after = Searcher(lib, new)
    assert len(top(after, paths[0])) == IMAGES - 1
    raw = lib.raw_vectors([int(i) for i in lib.vector_ids()])
    expected, _ = new.embed_paths([str(p) for p in paths], workers=0)
    ids = {str(p): lib.find_image(p)[0] for p in paths}
    assert np.allclose(new.finish(np.stack([raw[ids[str(p)]] for p in paths])), expected, atol=STORED_ATOL)


def test_a_cancelled_switch_keeps_the_current_model_and_resumes(indexed, models):
    lib, paths, searcher = indexed
    old, new = models
    before = top(searcher, paths[5])
    calls = {"n": 0}

    def cancel() -> bool:
        calls["n"] += 1
        return calls["n"] >= 2

    progress = switch(lib, new, cancel)
    summary = progress[-1].summary
    assert summary.cancelled and SWITCHED not in [p.phase for p in progress]
    assert lib.model_record().checksum == old.model.checksum
    pending = lib.pending_switch()
    assert pending.model.checksum == new.model.checksum and pending.staged == summary.embedded == 8
    assert top(Searcher(lib, old), paths[5]) == before
    with pytest.raises(ModelMismatchError):
        Searcher(lib, new)
    resumed = switch(lib, new)[-1].summary
    assert not resumed.cancelled and resumed.embedded == IMAGES - 8
    assert lib.model_record().checksum == new.model.checksum and lib.vector_count() == IMAGES


def test_a_file_changed_during_a_paused_switch_is_embedded_again(indexed, models):
    lib, _, _ = indexed
    old, new = models
    switch(lib, new, cancel=lambda: True)
    assert lib.pending_switch().staged == 4
    con = sqlite3.connect(lib.folder / DB_NAME)
    image_id = con.execute("SELECT image_id FROM staged_vectors LIMIT 1").fetchone()[0]
    con.close()
    first = Path(lib.image_paths([image_id])[image_id])
    style_image(first, 7, 7)  # rewritten: its staged vector is stale now
    os.utime(first, ns=(time.time_ns(), time.time_ns() + 10**9))
    list(index_folders(lib, [], old, workers=0))  # a rescan on the current model re-embeds it ...
    assert lib.pending_switch().staged == 3  # ... and drops its staged vector
    assert switch(lib, new)[-1].summary.embedded == IMAGES - 3
    expected, _ = new.embed_paths([str(first)], workers=0)
    assert np.allclose(new.finish(lib.raw_vectors([image_id])[image_id][None, :]), expected, atol=STORED_ATOL)


def test_switching_to_a_third_model_drops_the_vectors_staged_for_the_second(indexed, models, tmp_path):
    lib, _, _ = indexed
    _, new = models
    third = tiny_embedder(tmp_path / "third", seed=17)
    switch(lib, new, cancel=lambda: True)
    assert lib.pending_switch().staged == 4
    progress = switch(lib, third, cancel=lambda: True)
    assert lib.pending_switch().model.checksum == third.model.checksum
    assert lib.pending_switch().staged == progress[-1].summary.embedded == 4


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


@pytest.mark.slow
def test_kill_9_during_a_switch_leaves_the_old_model_searchable(tmp_path, models):
    old, _ = models
    art = tmp_path / "art"
    paths = make_tree(art, styles=8, per_style=15)
    lib_dir = tmp_path / "lib"
    with Library.open(lib_dir) as lib:
        list(index_folders(lib, [art], old, workers=0))
        before = top(Searcher(lib, old), paths[0], len(paths))
    new_file = tiny_model_file(tmp_path / "new", seed=11, name="new-s")
    log = tmp_path / "switch.log"
    command = [sys.executable, "-m", "app.launcher", "index", "--library", str(lib_dir), "--model", str(new_file),
               "--switch-model", "--device", "cpu", "--workers", "0", "--batch-size", "2"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, cwd=REPO, env=_env(), stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        with Library.open(lib_dir) as lib:
            while staged_rows(lib) < 4:
                assert proc.poll() is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, "the switch never got going:\n" + log.read_text()[-3000:]
                time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    with Library.open(lib_dir) as lib:
        staged = lib.pending_switch().staged
        assert 4 <= staged < len(paths), "the switch ended before it was killed"
        assert lib.model_record().checksum == old.model.checksum
        assert top(Searcher(lib, old), paths[0], len(paths)) == before
        new = Embedder(load_model_file(new_file), device="cpu")
        resumed = switch(lib, new, batch_size=16)[-1].summary
        assert resumed.embedded == len(paths) - staged
        assert len(top(Searcher(lib, new), paths[0], len(paths))) == len(paths) - 1


def test_a_version_3_library_is_upgraded_for_switches(tmp_path, models):
    old, new = models
    make_tree(tmp_path / "art", 2, 2)
    folder = tmp_path / "lib"
    with Library.open(folder) as lib:
        list(index_folders(lib, [tmp_path / "art"], old, workers=0))
    con = sqlite3.connect(folder / DB_NAME)
    con.execute("DROP TABLE staged_vectors")
    con.execute("ALTER TABLE models DROP COLUMN pending")
    con.execute("PRAGMA user_version=3")
    con.commit()
    con.close()
    with Library.open(folder) as lib:
        assert lib.model_record().checksum == old.model.checksum and lib.pending_switch() is None
        switch(lib, new)
        assert lib.model_record().checksum == new.model.checksum and lib.vector_count() == 4
    con = sqlite3.connect(folder / DB_NAME)
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    con.close()


def test_a_model_that_makes_the_same_raw_vectors_is_switched_to_without_re_embedding(tmp_path):
    """An updated bundled model that only re-weights or whitens the same network (a re-export) keeps every
    stored vector: the switch is a relabel, even with the image files gone."""
    from core.model import ModelConfig, build_model
    from core.modelfile import SAME_RAW_NOTE, ModelInfo, save_model
    from trainer.cli import main

    info = ModelInfo(name="fused", config=ModelConfig(input_size=32), colour_weight=0.2, colour_bins=(4, 4, 4))
    first = save_model(tmp_path / "first.safetensors", build_model(info.config, seed=5), info)
    reweighted, rebinned = tmp_path / "reweighted.safetensors", tmp_path / "rebinned.safetensors"
    assert main(["export", str(first), str(reweighted), "--colour-weight", "0.5"]) == 0
    assert main(["export", str(first), str(rebinned), "--colour-bins", "8,8,8"]) == 0
    old, new = (Embedder(load_model_file(p), device="cpu") for p in (first, reweighted))
    assert new.model.info.notes[SAME_RAW_NOTE] == [old.model.checksum]
    assert SAME_RAW_NOTE not in load_model_file(rebinned).info.notes, "other bins make other raw vectors"

    paths = make_tree(tmp_path / "art", STYLES, PER_STYLE)
    with Library.open(tmp_path / "lib") as lib:
        list(index_folders(lib, [tmp_path / "art"], old, workers=0))
        before = {int(i): v for ids, raw, _ in lib.iter_vectors() for i, v in zip(ids, raw)}
        with pytest.raises(ModelMismatchError, match=f"keeping its {IMAGES} stored vectors") as refused:
            list(index_folders(lib, [], new, workers=0))
        assert refused.value.keeps_vectors
        for path in paths:
            Path(path).unlink()
        phases = [p.phase for p in switch(lib, new)]
        after = {int(i): v for ids, raw, _ in lib.iter_vectors() for i, v in zip(ids, raw)}
        assert SWITCHED in phases and lib.model_record().checksum == new.model.checksum
        assert before.keys() == after.keys() and len(after) == IMAGES
        assert all(np.array_equal(before[i], after[i]) for i in before)
        assert staged_rows(lib) == 0
        # Search finishes the kept raw vectors with the new model's weights.
        index = Searcher(lib, new).cache.current()
        ids = index.labels()
        assert len(ids) == IMAGES
        assert np.allclose(index.vectors(ids), new.finish(np.stack([after[int(i)] for i in ids])), atol=1e-6)
        assert not np.allclose(index.vectors(ids), old.finish(np.stack([after[int(i)] for i in ids])), atol=1e-3)


def test_a_reexport_with_a_shorter_whitening_switches_without_reembedding_and_searches_the_shorter_vectors(
        indexed, models, tmp_path):
    from trainer.cli import main as trainer_main

    lib, paths, searcher = indexed
    old, _ = models
    fit_on = tmp_path / "fit.csv"
    fit_on.write_text("path,group\n" + "".join(f"{p},{p.parent.name}\n" for p in paths))
    short = tmp_path / "short.safetensors"
    assert trainer_main(["export", old.model.source, str(short), "--whiten", "0.5,0.5,6", "--fit-on", str(fit_on),
                         "--workers", "0"]) == 0
    new = Embedder(load_model_file(short), device="cpu")
    assert new.dim == 6 < new.raw_dim == old.dim
    before = top(searcher, paths[0])
    progress = switch(lib, new)
    reembedded = [(p.done, p.total) for p in progress if p.phase == REEMBED]
    assert reembedded == [(IMAGES, IMAGES)], "the raw vectors are the same: all staged at once, none embedded"
    assert SWITCHED in [p.phase for p in progress]
    assert lib.model_record().dim == 6
    after = top(Searcher(lib, new), paths[0])
    assert len(after) == IMAGES - 1 and after != before
    expected, _ = new.embed_paths([str(paths[0])], workers=0)
    assert expected.shape == (1, 6)
