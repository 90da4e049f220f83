"""Sparse Memory Finetuning (SMF): memory layers, slot statistics and sparse row updates."""

__version__ = "0.1.0"
