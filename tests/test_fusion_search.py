"""bench/fusion_search.py: the grid that chooses the bundled model's fusion weights, with and without whitening."""

from __future__ import annotations

import json

import pytest

from bench.fusion_search import main
from library_fixtures import tiny_model_file
from tests.test_compare_networks import two_sources  # noqa: F401 (fixture)


def test_whitened_weightings_are_scored_beside_plain_ones_and_fitted_on_the_fit_images_only(
        two_sources, tmp_path, capsys):  # noqa: F811 (fixture)
    model = tiny_model_file(tmp_path / "models", seed=3)
    report = tmp_path / "search.json"
    fit_on = tmp_path / "fit.csv"
    rows = two_sources.read_text().splitlines()
    fit_on.write_text("\n".join(r for r in rows if "/seen/" in r or r.startswith("path")) + "\n")
    common = ["--model", str(model), "--validation", str(two_sources), "--cue-size", "32", "--workers", "0",
              "--network-weights", "0.2", "--pattern-weights", "0.3", "--texture-shares", "0.5,0.8"]
    assert main(common + ["--whiten", "0.5,0.8", "1,0,4", "--fit-on", str(fit_on), "--report", str(report)]) == 0
    result = json.loads(report.read_text())
    grid = result["grid"]
    assert [(r["texture_share"], r["whiten"]) for r in grid] == [
        (share, whiten) for share in (0.5, 0.8) for whiten in (None, [0.5, 0.8, None], [1.0, 0.0, 4])]
    assert result["fit_on"] == str(fit_on)
    assert "whitening fit: 12 images" in capsys.readouterr().out
    # Whitening changes the ranking, and differently for each setting.
    assert len({round(r["criterion"], 9) for r in grid[:3]}) == 3
    assert result["chosen"]["criterion"] == max(r["criterion"] for r in grid)


def test_whitening_needs_its_fit_images(two_sources, tmp_path, capsys):  # noqa: F811 (fixture)
    with pytest.raises(SystemExit):
        main(["--validation", str(two_sources), "--whiten", "0.5,0.8"])
    assert "--whiten and --fit-on go together" in capsys.readouterr().err


def test_a_whitened_model_file_is_searched_from_its_plain_vectors_and_each_direct_cue_is_one_more_axis(
        two_sources, tmp_path):  # noqa: F811 (fixture)
    from trainer.cli import main as trainer_main

    plain = tiny_model_file(tmp_path / "models", seed=3)
    fit_on = tmp_path / "fit.csv"
    fit_on.write_text(two_sources.read_text())
    whitened = tmp_path / "whitened.safetensors"
    # The file whitens exactly the weighting the grid below scores first (network 0.2, pattern 0.3, share 0.5).
    assert trainer_main(["export", str(plain), str(whitened), "--colour-weight", "0.25", "--texture-weight", "0.25",
                         "--pattern-weight", "0.3", "--cue-size", "32", "--whiten", "0.5,0.8", "--fit-on",
                         str(fit_on), "--workers", "0"]) == 0
    grids = []
    for model in (plain, whitened):
        report = tmp_path / f"{model.stem}.json"
        assert main(["--model", str(model), "--validation", str(two_sources), "--cue-size", "32", "--workers", "0",
                     "--network-weights", "0.2", "--pattern-weights", "0.3", "--texture-shares", "0.5",
                     "--silhouette-weights", "0,0.1", "--cooccurrence-weights", "0,0.1", "--report", str(report)]) == 0
        grids.append(json.loads(report.read_text())["grid"])
    assert [(r["silhouette"], r["cooccurrence"]) for r in grids[0]] == [(0.0, 0.0), (0.0, 0.1), (0.1, 0.0), (0.1, 0.1)]
    assert len({round(r["criterion"], 9) for r in grids[0]}) > 1, "each weighting is scored with its own weights"
    assert [r["criterion"] for r in grids[0]] == [r["criterion"] for r in grids[1]], "the file's whitening never applies"
