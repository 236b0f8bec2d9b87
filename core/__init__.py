"""The ALADIN style-search engine: model, images, library, index and search. Never imports Qt."""

__version__ = "0.1.0"
