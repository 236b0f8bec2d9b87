"""The CPU policy: decoders and torch threads share the cores, decided once and applied once."""

from __future__ import annotations

import os

import pytest
import torch

import core.embedder
from core.cli import main
from core.cpu import CpuPlan, plan
from core.decode import iter_decoded
from library_fixtures import make_tree, tiny_embedder, tiny_model_file


@pytest.fixture(autouse=True)
def _no_omp(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)


def test_measured_split_on_two_cores_and_a_fifth_decoding_on_more():
    assert plan(cores=2) == CpuPlan(decoders=1, torch_threads=1)
    assert plan(cores=4) == CpuPlan(1, 3)
    assert plan(cores=16) == CpuPlan(3, 13)


def test_with_a_gpu_or_no_model_every_core_but_one_decodes_up_to_eight():
    assert plan(cores=2, device="cuda") == CpuPlan(1, 1)
    assert plan(cores=6, device="cuda") == CpuPlan(5, 1)
    assert plan(cores=16, device="cuda") == CpuPlan(8, 8)
    assert plan(cores=16, device=None) == CpuPlan(8, 8)


def test_explicit_decoders_and_omp_num_threads_win(monkeypatch):
    assert plan(cores=4, decoders=0) == CpuPlan(0, 4)
    assert plan(cores=16, decoders=6) == CpuPlan(6, 10)
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    assert plan(cores=16) == CpuPlan(3, 7)
    monkeypatch.setenv("OMP_NUM_THREADS", "not a number")
    assert plan(cores=16) == CpuPlan(3, 13)


@pytest.fixture
def seen(monkeypatch):
    """Record (decoders asked for, torch threads while embedding); decode in-process so the test stays cheap."""
    calls: list[tuple[int, int]] = []

    def spy(paths, size, chunk=16, workers=None, prefetch=None):
        calls.append((workers, torch.get_num_threads()))
        yield from iter_decoded(paths, size, chunk=chunk, workers=0)

    monkeypatch.setattr(core.embedder, "iter_decoded", spy)
    return calls


@pytest.mark.parametrize("cores", [2, 16])
def test_cli_index_applies_the_plan_once(tmp_path, monkeypatch, seen, cores):
    """``aladin index`` on the CPU: the decoders and torch threads are the plan's, not reduced twice."""
    make_tree(tmp_path / "art", styles=2, per_style=2)
    model = tiny_model_file(tmp_path)
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    before = torch.get_num_threads()
    assert main(["index", str(tmp_path / "art"), "--library", str(tmp_path / "lib"), "--model", str(model),
                 "--device", "cpu"]) == 0
    expected = plan(cores=cores)
    assert seen == [(expected.decoders, expected.torch_threads)]
    assert expected.decoders + expected.torch_threads == cores
    assert torch.get_num_threads() == before


def test_without_decoders_torch_threads_are_left_alone(tmp_path, monkeypatch, seen):
    """A search embeds its query in-process: it must not change the thread count an indexer set."""
    paths = make_tree(tmp_path / "art", styles=1, per_style=2)
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    torch.set_num_threads(1)  # as an indexing thread beside this search would have set it
    tiny_embedder(tmp_path).embed_paths([str(p) for p in paths], workers=0)
    assert seen == [(0, 1)]
    assert torch.get_num_threads() == 1
