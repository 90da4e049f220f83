"""Probes: multiple choice, perplexity and question answering on any HF causal LM,
and the local lm-evaluation-harness task used to check them.
"""
