"""Rules finetune_*: one arm x seed (see smf.pipeline.stages.finetune)."""

from pathlib import Path
from typing import TYPE_CHECKING

from smf.pipeline import stages

if TYPE_CHECKING:
    from snakemake.script import snakemake

artifact = Path(snakemake.output.artifact)
with stages.log_to(snakemake.log[0]):
    summary = stages.finetune(
        snakemake.wildcards.arm,
        dict(snakemake.params.arm_cfg),
        dict(snakemake.params.train),
        seed=int(snakemake.wildcards.seed),
        base_dir=snakemake.input.base,
        task_path=snakemake.input.task,
        header=snakemake.params.header,
        out_dir=artifact.parent if artifact.suffix == ".safetensors" else artifact,
        out_log=snakemake.output.log,
        out_summary=snakemake.output.summary,
        work_dir=snakemake.params.work_dir,
        device=snakemake.params.device,
        memory_path=snakemake.input.get("memory"),
        background_path=snakemake.input.get("background"),
        task_kind=snakemake.params.task_kind,
    )
    print(summary)
