"""Rule background: slot statistics over background text (see smf.method.background)."""

from typing import TYPE_CHECKING

from smf.pipeline import stages

if TYPE_CHECKING:
    from snakemake.script import snakemake

with stages.log_to(snakemake.log[0]):
    summary = stages.background_stats(
        snakemake.input.base,
        snakemake.input.memory,
        snakemake.input.corpus,
        snakemake.output.stats,
        snakemake.output.summary,
        max_length=snakemake.params.max_length,
        batch_size=snakemake.params.batch_size,
        precision=snakemake.params.precision,
        device=snakemake.params.device,
        description=snakemake.params.description,
    )
    print(summary)
