"""Rule base_model: the base model and tokenizer in results/models/base."""

from typing import TYPE_CHECKING

from smf.pipeline import stages

if TYPE_CHECKING:
    from snakemake.script import snakemake

with stages.log_to(snakemake.log[0]):
    info = stages.build_base(
        dict(snakemake.params.base),
        snakemake.output[0],
        device=snakemake.params.device,
        work_dir=snakemake.params.work_dir,
        pretrain_corpus=snakemake.input.pretrain or None,
    )
    print(info)
