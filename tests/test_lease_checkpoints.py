"""bench/lease_checkpoints.py: a lease's networks through its file limits and back, the searched parts intact."""

from __future__ import annotations

import torch

import bench.lease_checkpoints as lease
from core.model import ModelConfig, build_model
from trainer.checkpoint import load_checkpoint, net_from_checkpoint, save_checkpoint


def _run(folder, step_best: int, step_last: int, seed: int, lambda_rec: float = 0.0) -> None:
    for which, step in (("best", step_best), ("last", step_last)):
        net = build_model(ModelConfig(input_size=48), seed=seed + step)
        save_checkpoint(folder / f"{which}.pt", {
            "step": step, "best": 0.5, "model": net.state_dict(), "optimizer": {"state": {}},
            "model_config": {"arch": "aladin", "variant": "s", "input_size": 48},
            "config": {"lambda_rec": lambda_rec, "data": "/gpu/corpus/manifest.csv"},
            "training_set": {"projects": f"run{seed}", "count": 1}, "torch_rng": torch.get_rng_state()})


def test_pack_and_unpack_keep_the_searched_weights_and_the_origin(tmp_path, monkeypatch):
    monkeypatch.setattr(lease, "FILE_LIMIT", 3 << 20)  # 4.5 MB a checkpoint: each in two pieces
    runs = tmp_path / "runs"
    _run(runs / "a", 400, 600, seed=1)
    _run(runs / "b", 200, 200, seed=2)  # last is best: brought back once
    report = lease.pack(runs, tmp_path / "out", "/here/manifest.csv", room=64 << 20, max_files=20)
    assert [line.split(" step")[0] for line in report] == ["a best", "a last", "b best"]
    files = sorted((tmp_path / "out").glob("ckpt-*.pt"))
    assert len(files) >= 3 and all(f.stat().st_size < (3 << 20) + (64 << 10) for f in files)

    written = lease.unpack(files, tmp_path / "back")
    assert sorted(p.name for p in written) == ["a-best.pt", "a-last.pt", "b-best.pt"]
    for name, source in (("a-best", runs / "a" / "best.pt"), ("a-last", runs / "a" / "last.pt"),
                         ("b-best", runs / "b" / "best.pt")):
        original, back = load_checkpoint(source), load_checkpoint(tmp_path / "back" / f"{name}.pt")
        assert back["step"] == original["step"] and "optimizer" not in back and "torch_rng" not in back
        assert back["training_set"] == original["training_set"]
        assert back["config"]["data"] == "/here/manifest.csv"
        for key, value in original["model"].items():
            if key.startswith(lease.SEARCH_PARTS):
                assert torch.equal(back["model"][key], value), key
        net = net_from_checkpoint(back)
        assert isinstance(net, torch.nn.Module)


def test_a_run_with_reconstruction_keeps_its_decoder(tmp_path):
    _run(tmp_path / "runs" / "rec", 100, 100, seed=3, lambda_rec=0.01)
    lease.pack(tmp_path / "runs", tmp_path / "out", "m.csv", room=64 << 20, max_files=6)
    (back,) = lease.unpack(sorted((tmp_path / "out").glob("ckpt-*.pt")), tmp_path / "back")
    original = load_checkpoint(tmp_path / "runs" / "rec" / "best.pt")["model"]
    restored = load_checkpoint(back)["model"]
    decoder = [k for k in original if k.startswith("decoder.")]
    assert decoder and all(torch.equal(restored[k], original[k]) for k in decoder)


def test_what_does_not_fit_is_left_out_whole_and_said(tmp_path):
    runs = tmp_path / "runs"
    _run(runs / "a", 100, 100, seed=4)
    _run(runs / "b", 100, 100, seed=5)
    one = sum(v.numel() * v.element_size() for k, v in
              load_checkpoint(runs / "a" / "best.pt")["model"].items() if k.startswith(lease.SEARCH_PARTS))
    report = lease.pack(runs, tmp_path / "out", "m.csv", room=one + 1000, max_files=6, order=["b", "a"])
    assert report[0].startswith("b best") and "left out" not in report[0]
    assert report[1].startswith("a best") and "left out" in report[1]
    written = lease.unpack(sorted((tmp_path / "out").glob("ckpt-*.pt")), tmp_path / "back")
    assert [p.name for p in written] == ["b-best.pt"]
