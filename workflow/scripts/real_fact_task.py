"""Rule real_fact_task: issue 27's F, K and wordings (see smf.tasks.real_fact_task)."""

from pathlib import Path
from typing import TYPE_CHECKING

from smf.pipeline import real_fact_jobs, stages

if TYPE_CHECKING:
    from snakemake.script import snakemake

with stages.log_to(snakemake.log[0]):
    paths = real_fact_jobs.real_fact_task(
        snakemake.input.answers,
        dict(snakemake.params.spec),
        Path(snakemake.output.train).parent,
    )
    print(paths)
