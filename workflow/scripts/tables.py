"""Rule tables: the main table from cached eval JSONs (see smf.pipeline.report_jobs; no torch
import)."""

from typing import TYPE_CHECKING

from smf.pipeline.joblog import log_to
from smf.pipeline.report_jobs import build_tables

if TYPE_CHECKING:
    from snakemake.script import snakemake

with log_to(snakemake.log[0]):
    table = build_tables(
        list(snakemake.input),
        list(snakemake.params.arms),
        list(snakemake.params.probes),
        dict(snakemake.output.items()),
        note=snakemake.params.note,
    )
    print(table.to_string())
