"""Rules finetune_*: one arm x seed (see smf.pipeline.stages.finetune)."""

from pathlib import Path
from typing import TYPE_CHECKING

from smf.pipeline import stages
from smf.training.arms import registry

if TYPE_CHECKING:
    from snakemake.script import snakemake

artifact = Path(snakemake.output.artifact)
with stages.log_to(snakemake.log[0]):
    kind_modules = list(snakemake.config.get(registry.MODULES_KEY) or [])
    registry.import_kinds(kind_modules)  # arm kinds of the user's own
    kind = registry.kind_of(snakemake.params.arm_cfg["kind"])
    summary = stages.finetune(
        snakemake.wildcards.arm,
        dict(snakemake.params.arm_cfg),
        dict(snakemake.params.train),
        seed=int(snakemake.wildcards.seed),
        base_dir=snakemake.input.base,
        task_path=snakemake.input.task,
        header=snakemake.params.header,
        out_dir=artifact if kind.artifact_is_dir else artifact.parent,
        kind_modules=kind_modules,
        out_log=snakemake.output.log,
        out_summary=snakemake.output.summary,
        work_dir=snakemake.params.work_dir,
        device=snakemake.params.device,
        memory_path=snakemake.input.get("memory"),
        background_path=snakemake.input.get("background"),
        task_kind=snakemake.params.task_kind,
    )
    print(summary)
