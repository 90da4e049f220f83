"""Rule evaluate: one model on every probe (see smf.probes.scoring, smf.probes.perplexity,
smf.probes.qa)."""

from typing import TYPE_CHECKING

from smf.pipeline import stages

if TYPE_CHECKING:
    from snakemake.script import snakemake

probes = dict(snakemake.params.probes)
with stages.log_to(snakemake.log[0]):
    results = stages.evaluate(
        snakemake.wildcards.model,
        snakemake.params.kind,
        {name: dict(spec) for name, spec in probes.items()},
        base_dir=snakemake.input.base,
        artifact=snakemake.input.get("artifact"),
        data_paths={name: snakemake.input[f"data_{name}"] for name in probes},
        outs=dict(zip(probes, snakemake.output, strict=True)),
        device=snakemake.params.device,
        dtype=snakemake.params.dtype,
        memory_dtype=snakemake.params.memory_dtype,
        batch_size=snakemake.params.batch_size,
        header=snakemake.params.header,
        kind_modules=snakemake.config.get("arm_kind_modules") or [],
    )
    for r in results:
        print({k: r[k] for k in ("model", "probe", "metric", "value", "n")})
