"""Rule demo_world: write the demo's fictional datasets (see smf.demo.datasets)."""

from typing import TYPE_CHECKING

from smf.pipeline import stages

if TYPE_CHECKING:
    from snakemake.script import snakemake

with stages.log_to(snakemake.log[0]):
    paths = stages.make_demo_world(snakemake.params.out_dir, seed=snakemake.params.seed)
    print("wrote", paths)
