"""Training: one resumable loop for every arm, its config, batching, checkpoints,
precision, the arms' setup, and SMF's per-step diagnostics.
"""
