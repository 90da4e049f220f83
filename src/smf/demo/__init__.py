"""The offline demo's world: a small fictional world written as the real datasets' files,
and the tiny tokenizer and model pretrained on it.
"""
