"""Rule prepare_data: one configured dataset into its JSONL schema (see smf.data.prepare)."""

from typing import TYPE_CHECKING

from smf.pipeline import stages

if TYPE_CHECKING:
    from snakemake.script import snakemake

with stages.log_to(snakemake.log[0]):
    stats = stages.prepare_data(
        snakemake.wildcards.dataset, dict(snakemake.params.spec), snakemake.output[0]
    )
    print(stats)
    stages.write_json(stats, snakemake.output.stats)
