"""Rule tables: the main table from cached eval JSONs (see smf.report)."""

from typing import TYPE_CHECKING

from smf import stages

if TYPE_CHECKING:
    from snakemake.script import snakemake

with stages.log_to(snakemake.log[0]):
    table = stages.build_tables(
        list(snakemake.input),
        list(snakemake.params.arms),
        list(snakemake.params.probes),
        dict(snakemake.output.items()),
    )
    print(table.to_string())
