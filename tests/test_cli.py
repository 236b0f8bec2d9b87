"""The ``aladin`` entry point: GUI dispatch and the known-error handling all three tools share."""

from __future__ import annotations

import pytest

import app.main
from app.launcher import main
from conftest import make_image
from core.cli import main as core_main
from core.cli.runner import run_command
from core.errors import LibraryBusyError
from trainer.cli import main as trainer_main
from trainer.corpora.__main__ import main as corpora_main


def test_gui_command_passes_the_library_folder(monkeypatch, tmp_path):
    seen = []
    monkeypatch.setattr(app.main, "main", lambda argv: seen.append(argv) or 0)
    assert main(["gui", "--library", str(tmp_path)]) == 0
    assert main([]) == 0
    assert seen == [["--library", str(tmp_path)], []]


def test_paths_without_a_command_open_the_app_with_them(tmp_path, monkeypatch):
    """``aladin IMAGE...`` is what a file manager's "Open with" runs (the entry's ``Exec=aladin %F``)."""
    seen = []
    monkeypatch.setattr(app.main, "main", lambda argv: seen.append(argv) or 0)
    a = make_image(tmp_path / "a.png")
    make_image(tmp_path / "b.png")
    monkeypatch.chdir(tmp_path)
    assert main([str(a), "b.png"]) == 0
    assert main(["-v", str(tmp_path / "gone.png")]) == 0  # absolute: a file manager's, even if deleted since
    assert main(["gui", "--library", str(tmp_path / "lib"), str(a)]) == 0
    assert seen == [["--", str(a), "b.png"], ["--", str(tmp_path / "gone.png")],
                    ["--library", str(tmp_path / "lib"), "--", str(a)]]
    (tmp_path / "index").mkdir()  # a command's name stays the command, whatever lies in the folder
    with pytest.raises(SystemExit):
        main(["index", "--batch-size", "x"])
    with pytest.raises(SystemExit):
        main(["indx"])  # a typo is an unknown command, not a missing image
    assert len(seen) == 3


def test_the_layer_above_adds_commands_without_the_engine_knowing_them(capsys):
    def register(sub):
        sub.add_parser("hello").set_defaults(func=lambda args: print("hello from above") or 0)

    assert core_main(["hello"], extra_commands=(register,)) == 0
    assert capsys.readouterr().out == "hello from above\n"
    with pytest.raises(SystemExit):
        core_main(["hello"])


def test_the_engine_command_line_has_no_gui_of_its_own(capsys):
    with pytest.raises(SystemExit) as exit_:
        core_main([])
    assert exit_.value.code == 2 and "required" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        core_main(["gui"])


def test_known_errors_are_one_line_with_status_2(tmp_path, capsys):
    missing = tmp_path / "absent.txt"
    code = main(["embed", "--paths-from", str(missing), "--out", str(tmp_path / "o.npy"), "--model", "untrained-s"])
    err = capsys.readouterr().err
    assert code == 2 and "cannot read the path list" in err and err.count("aladin: error") == 1


@pytest.mark.parametrize("tool, argv, prefix", [
    (trainer_main, ["eval", "--data", "{missing}", "--baseline", "colour"], "trainer: error:"),
    (corpora_main, ["unpack", "{missing}", "{out}"], "python -m trainer.corpora: error:"),
])
def test_every_tool_reports_known_errors_the_same_way(tool, argv, prefix, tmp_path, capsys):
    argv = [a.format(missing=tmp_path / "absent", out=tmp_path / "out") for a in argv]
    assert tool(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(prefix), err


def test_runner_maps_interrupts_and_keeps_bugs_loud(capsys):
    def busy():
        raise LibraryBusyError("library X is busy")

    def interrupted():
        raise KeyboardInterrupt

    def bug():
        raise ZeroDivisionError

    assert run_command("tool", lambda: 0) == 0 and run_command("tool", lambda: None) == 0
    assert run_command("tool", busy) == 2
    assert run_command("tool", interrupted, interrupted="stopped; run again to resume") == 130
    err = capsys.readouterr().err
    assert "tool: error: library X is busy" in err and "tool: stopped; run again to resume" in err
    with pytest.raises(ZeroDivisionError):
        run_command("tool", bug)


def test_the_console_script_and_its_parser_are_light_to_import():
    """Spawned decoder and indexing processes re-import the console script, and `aladin IMAGE` hands its
    images to a running window after parsing: neither may pull in torch or SQLAlchemy (seconds each)."""
    import subprocess
    import sys

    code = ("import sys, app.launcher, core.cli; core.cli.build_parser(gui=print); "
            "print(sorted(m for m in ('torch', 'sqlalchemy', 'PySide6') if m in sys.modules))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "[]", run.stdout + run.stderr
