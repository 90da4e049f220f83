"""Rule tradeoff: gains, forgetting on a grid of learning levels and paired differences between
arms, with intervals over seeds and questions (see smf.pipeline.report_jobs)."""

from typing import TYPE_CHECKING

from smf.pipeline.joblog import log_to
from smf.pipeline.report_jobs import build_tradeoff
from smf.report.smf_diagnostics import write_diagnostics_tables

if TYPE_CHECKING:
    from snakemake.script import snakemake

with log_to(snakemake.log[0]):
    out = dict(snakemake.output.items())
    families = {arm: list(runs) for arm, runs in snakemake.params.families.items()}
    levels = build_tradeoff(
        list(snakemake.input.evals),
        families,
        dict(snakemake.params.lrs),
        snakemake.params.learning_probe,
        list(snakemake.params.forgetting_probes),
        out,
        snakemake.config.get("tradeoff"),
        dict(snakemake.params.learning_data),
    )
    print(levels.to_string())
    if "diag_csv" in out:  # the main trade-off only, not tradeoff_extra
        write_diagnostics_tables(list(snakemake.input.summaries), out["diag_csv"], out["diag_md"])
