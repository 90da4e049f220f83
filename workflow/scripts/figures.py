"""Rule figures: learning-vs-forgetting and loss curves (see smf.report)."""

from typing import TYPE_CHECKING

from smf import stages

if TYPE_CHECKING:
    from snakemake.script import snakemake

with stages.log_to(snakemake.log[0]):
    stages.build_figures(
        list(snakemake.input.evals),
        {arm: list(paths) for arm, paths in snakemake.params.log_paths.items()},
        snakemake.params.learning_probe,
        list(snakemake.params.forgetting_probes),
        dict(snakemake.output.items()),
    )
