"""Rule figures: learning-vs-forgetting and loss curves (see smf.pipeline.report_jobs; no torch
import)."""

from typing import TYPE_CHECKING

from smf.pipeline.joblog import log_to
from smf.pipeline.report_jobs import build_figures

if TYPE_CHECKING:
    from snakemake.script import snakemake

with log_to(snakemake.log[0]):
    build_figures(
        list(snakemake.input.evals),
        {arm: list(paths) for arm, paths in snakemake.params.log_paths.items()},
        snakemake.params.learning_probe,
        list(snakemake.params.forgetting_probes),
        dict(snakemake.output.items()),
    )
