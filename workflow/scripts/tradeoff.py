"""Rule tradeoff: gains, forgetting on a grid of learning levels and paired differences between
arms, with intervals over seeds and questions (see smf.pipeline.report_jobs)."""

from typing import TYPE_CHECKING

from smf.pipeline.joblog import log_to
from smf.pipeline.report_jobs import build_tradeoff

if TYPE_CHECKING:
    from snakemake.script import snakemake

with log_to(snakemake.log[0]):
    families = {arm: list(runs) for arm, runs in snakemake.params.families.items()}
    levels = build_tradeoff(
        list(snakemake.input),
        families,
        dict(snakemake.params.lrs),
        snakemake.params.learning_probe,
        list(snakemake.params.forgetting_probes),
        dict(snakemake.output.items()),
        snakemake.config.get("tradeoff"),
        dict(snakemake.params.learning_data),
    )
    print(levels.to_string())
