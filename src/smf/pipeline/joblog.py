"""Send a Snakemake job's output to its log file: stdout, stderr and the libraries' loggers.

Kept free of torch and transformers so that the report jobs, which only read JSON and draw,
start in about a second.
"""

from __future__ import annotations

import contextlib
import logging
import traceback
from collections.abc import Iterator
from pathlib import Path

LIBRARY_LOGGERS = ("transformers", "datasets", "peft", "huggingface_hub")


@contextlib.contextmanager
def log_to(path: str | Path) -> Iterator[None]:
    """Send a job's stdout/stderr (tqdm bars, warnings, tracebacks) to its Snakemake log."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with (
        open(path, "w", buffering=1) as f,
        contextlib.redirect_stdout(f),
        contextlib.redirect_stderr(f),
    ):
        # library loggers bound their handlers to the terminal's stderr at import time
        handlers = [
            h
            for name in LIBRARY_LOGGERS
            for h in logging.getLogger(name).handlers
            if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
        ]
        previous = [h.setStream(f) for h in handlers]
        try:
            yield
        except BaseException:
            traceback.print_exc(file=f)
            raise
        finally:
            for h, stream in zip(handlers, previous, strict=True):
                h.setStream(stream)
