"""Sparse Memory Finetuning (SMF): memory layers, slot statistics and sparse row updates."""

__version__ = "0.1.0"

# The public API (smf.api), imported on first use: `import smf` stays cheap (no torch), as the
# Snakemake rules import it while they build the DAG.
_API = (
    "BackgroundStats",
    "SMFConfig",
    "SMFTrainer",
    "TokenizedTexts",
    "compute_background",
    "from_pretrained",
    "get_smf_model",
    "recover",
    "save_pretrained",
    "training_arguments",
)
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        import smf.api

        return getattr(smf.api, name)
    raise AttributeError(f"module 'smf' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
