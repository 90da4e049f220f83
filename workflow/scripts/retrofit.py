"""Rule retrofit: attach memory layers and recover them (see smf.method.retrofit,
smf.training.loop)."""

from typing import TYPE_CHECKING

from smf.pipeline import stages

if TYPE_CHECKING:
    from snakemake.script import snakemake

with stages.log_to(snakemake.log[0]):
    info = stages.retrofit_and_recover(
        snakemake.input.base,
        snakemake.input.recovery,
        dict(snakemake.params.retrofit),
        dict(snakemake.params.train),
        snakemake.output.memory,
        snakemake.output.log,
        device=snakemake.params.device,
        work_dir=snakemake.params.work_dir,
    )
    print(info)
