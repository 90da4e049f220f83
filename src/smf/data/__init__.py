"""Data: the real datasets' sources, the prepared schemas every stage reads, the prompts
that turn records into text, and the GGUF reader for offline weights.
"""
