"""The SMF method itself: memory layers, the exact retrofit, background slot statistics,
row selection (TF-IDF, KL) and the sparse optimizer, with the provenance of their artifacts.
"""
