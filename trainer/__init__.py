"""ALADIN training, fine-tuning, evaluation and export (``python -m trainer``).

Imports ``core`` (the network, the decode path, model files); never the GUI.
"""
