"""The ALADIN Style Browser desktop app (PySide6).

The app only presents: every piece of real work (indexing, search, model
loading, thumbnail decoding) goes through ``core`` APIs in worker threads that
report back by signals, so the event loop never waits on disk, model or index.
"""
