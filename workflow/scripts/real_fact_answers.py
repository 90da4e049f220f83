"""Rule real_fact_answers: the base model's cached answers (see smf.probes.base_answers)."""

from typing import TYPE_CHECKING

from smf.pipeline import real_fact_jobs, stages

if TYPE_CHECKING:
    from snakemake.script import snakemake

with stages.log_to(snakemake.log[0]):
    counts = real_fact_jobs.real_fact_answers(
        snakemake.input.base,
        snakemake.input.data,
        snakemake.output.answers,
        snakemake.params.work_dir,
        dict(snakemake.params.spec),
        device=snakemake.params.device,
        batch_size=snakemake.params.batch_size,
        code=snakemake.params.code,
    )
    print(counts)
    stages.write_json(counts, snakemake.output.stats)
