"""Rule evaluate: one model on one probe (see smf.probes)."""

from typing import TYPE_CHECKING

from smf import stages

if TYPE_CHECKING:
    from snakemake.script import snakemake

with stages.log_to(snakemake.log[0]):
    result = stages.evaluate(
        snakemake.wildcards.model,
        snakemake.params.kind,
        snakemake.wildcards.probe,
        dict(snakemake.params.probe_cfg),
        base_dir=snakemake.input.base,
        artifact=snakemake.input.get("artifact"),
        data_path=snakemake.input.data,
        out=snakemake.output[0],
        device=snakemake.params.device,
        dtype=snakemake.params.dtype,
        batch_size=snakemake.params.batch_size,
        header=snakemake.params.header,
    )
    print({k: result[k] for k in ("model", "probe", "metric", "value", "n")})
