"""The ``aladin`` entry point: GUI dispatch and known-error handling."""

from __future__ import annotations

import app.main

from core.cli import main


def test_gui_command_passes_the_library_folder(monkeypatch, tmp_path):
    seen = []
    monkeypatch.setattr(app.main, "main", lambda argv: seen.append(argv) or 0)
    assert main(["gui", "--library", str(tmp_path)]) == 0
    assert main([]) == 0
    assert seen == [["--library", str(tmp_path)], []]


def test_known_errors_are_one_line_with_status_2(tmp_path, capsys):
    missing = tmp_path / "absent.txt"
    code = main(["embed", "--paths-from", str(missing), "--out", str(tmp_path / "o.npy"), "--model", "untrained-s"])
    err = capsys.readouterr().err
    assert code == 2 and "cannot read the path list" in err and err.count("aladin: error") == 1
