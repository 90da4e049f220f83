"""Rule slot_overlap: the answer-position slot overlap of each real fact's taught and held-out
wordings on the retrofit model (see smf.pipeline.real_fact_jobs.slot_overlap)."""

from typing import TYPE_CHECKING

from smf.pipeline import real_fact_jobs, stages

if TYPE_CHECKING:
    from snakemake.script import snakemake

with stages.log_to(snakemake.log[0]):
    summary = real_fact_jobs.slot_overlap(
        snakemake.input.base,
        snakemake.input.memory,
        snakemake.input.taught,
        snakemake.input.held_out,
        snakemake.output.overlap,
        facts=snakemake.params.facts,
        device=snakemake.params.device,
        batch_size=snakemake.params.batch_size,
        code=snakemake.params.code,
        model_name=snakemake.params.model,
    )
    print(summary)
