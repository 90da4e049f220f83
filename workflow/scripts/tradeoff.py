"""Rule tradeoff: Pareto fronts and forgetting at matched learning (see smf.report_stages)."""

from typing import TYPE_CHECKING

from smf.joblog import log_to
from smf.report_stages import build_tradeoff

if TYPE_CHECKING:
    from snakemake.script import snakemake

with log_to(snakemake.log[0]):
    table = build_tradeoff(
        list(snakemake.input),
        {arm: list(runs) for arm, runs in snakemake.params.families.items()},
        snakemake.params.learning_probe,
        list(snakemake.params.forgetting_probes),
        dict(snakemake.output.items()),
    )
    print(table.to_string())
    print(table.attrs)
