"""The CPU policy: decoders and torch threads share the cores, decided once and applied once."""

from __future__ import annotations

import os

import pytest
import torch

import core.embedder
from core.cli import main
from core.cpu import DECODE_S, CpuPlan, plan
from core.decode import iter_decoded
from core.embedder import Embedder
from library_fixtures import make_tree, tiny_embedder, tiny_model_file


@pytest.fixture(autouse=True)
def _no_omp(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)


def test_measured_split_on_two_cores_and_a_fifth_decoding_on_more():
    assert plan(cores=2) == CpuPlan(decoders=1, torch_threads=1)
    assert plan(cores=4) == CpuPlan(1, 3)
    assert plan(cores=16) == CpuPlan(3, 13)


def test_a_cheap_network_leaves_every_core_to_decoding_and_one_thread_to_torch():
    """The bundled 64 px model takes about 5 ms an image on one thread against about 20 ms of decoding."""
    assert plan(cores=2, network_s=0.005) == CpuPlan(decoders=2, torch_threads=1)
    assert plan(cores=1, network_s=0.005) == CpuPlan(1, 1)
    assert plan(cores=16, network_s=0.005) == CpuPlan(13, 3)
    assert plan(cores=2, network_s=0.0) == CpuPlan(2, 1)


def test_a_costly_network_gets_the_cores_and_decoders_are_rounded_up():
    """A 256 px model (0.33 s an image) keeps one decoder; an even split rounds in decoding's favour."""
    assert plan(cores=2, network_s=0.33) == CpuPlan(1, 1)
    assert plan(cores=16, network_s=0.33) == CpuPlan(1, 15)
    assert plan(cores=4, network_s=DECODE_S) == CpuPlan(2, 2)
    assert plan(cores=4, network_s=DECODE_S * 0.9) == CpuPlan(3, 1)
    assert plan(cores=16, device="cuda", network_s=0.33) == CpuPlan(8, 8)


def test_the_network_is_timed_once_per_embedder(tmp_path, monkeypatch):
    embedder = tiny_embedder(tmp_path)
    calls = []
    real = embedder.raw_from_pixels
    monkeypatch.setattr(embedder, "raw_from_pixels", lambda pixels: calls.append(len(pixels)) or real(pixels))
    before = torch.get_num_threads()
    first = embedder.network_seconds()
    assert 0 < first < 10
    assert embedder.network_seconds() == first
    assert len(calls) == 2  # a warm-up and the timed batch, once
    assert torch.get_num_threads() == before


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

    def spy(paths, size, chunk=16, workers=None, prefetch=None, digests=False, alpha=False):
        calls.append((workers, torch.get_num_threads()))
        yield from iter_decoded(paths, size, chunk=chunk, workers=0, alpha=alpha)

    monkeypatch.setattr(core.embedder, "iter_decoded", spy)
    return calls


@pytest.mark.parametrize("cores", [2, 16])
def test_cli_index_applies_the_plan_once(tmp_path, monkeypatch, seen, cores):
    """``aladin index`` on the CPU: the decoders and torch threads are the plan's for the model's measured
    cost, not reduced twice."""
    make_tree(tmp_path / "art", styles=2, per_style=2)
    model = tiny_model_file(tmp_path)
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    monkeypatch.setattr(Embedder, "network_seconds", lambda self: 0.005)
    before = torch.get_num_threads()
    assert main(["index", str(tmp_path / "art"), "--library", str(tmp_path / "lib"), "--model", str(model),
                 "--device", "cpu"]) == 0
    expected = plan(cores=cores, network_s=0.005)
    assert seen == [(expected.decoders, expected.torch_threads)]
    assert expected == {2: CpuPlan(2, 1), 16: CpuPlan(13, 3)}[cores]
    assert torch.get_num_threads() == before


def test_without_decoders_torch_threads_are_left_alone(tmp_path, monkeypatch, seen):
    """A search embeds its query in-process: it must not change the thread count an indexer set."""
    paths = make_tree(tmp_path / "art", styles=1, per_style=2)
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    torch.set_num_threads(1)  # as an indexing thread beside this search would have set it
    tiny_embedder(tmp_path).embed_paths([str(p) for p in paths], workers=0)
    assert seen == [(0, 1)]
    assert torch.get_num_threads() == 1
