"""core.paths: every per-user folder honours its environment override, read when asked."""

from __future__ import annotations

import sys

import pytest

from core import paths


def test_environment_overrides_are_read_at_call_time(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.LIBRARY_ENV, str(tmp_path / "lib"))
    monkeypatch.setenv(paths.LOG_ENV, str(tmp_path / "log"))
    monkeypatch.setenv(paths.CACHE_ENV, str(tmp_path / "cache"))
    assert paths.library_dir() == tmp_path / "lib"
    assert paths.log_dir() == tmp_path / "log"
    assert paths.cache_dir() == tmp_path / "cache"


def test_without_overrides_the_folders_sit_in_the_users_data_folder(monkeypatch):
    for name in (paths.LIBRARY_ENV, paths.LOG_ENV, paths.CACHE_ENV):
        monkeypatch.delenv(name, raising=False)
    assert paths.library_dir() == paths.data_dir() / "library"
    assert paths.pasted_dir() == paths.data_dir() / "pasted"
    assert paths.config_file().name == "aladin.ini"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="XDG variables apply on Linux")
def test_xdg_variables_move_the_folders_on_linux(tmp_path, monkeypatch):
    for name in (paths.LIBRARY_ENV, paths.LOG_ENV, paths.CACHE_ENV):
        monkeypatch.delenv(name, raising=False)
    for var in ("DATA", "CACHE", "CONFIG", "STATE"):
        monkeypatch.setenv(f"XDG_{var}_HOME", str(tmp_path / var.lower()))
    assert paths.library_dir() == tmp_path / "data" / "aladin" / "library"
    assert paths.cache_dir() == tmp_path / "cache" / "aladin"
    assert paths.config_file() == tmp_path / "config" / "aladin" / "aladin.ini"
    assert paths.log_dir().is_relative_to(tmp_path / "state")
