"""Rule fact_task: paper 1's fact-learning task (see smf.tasks.facts)."""

from pathlib import Path
from typing import TYPE_CHECKING

from smf.pipeline.joblog import log_to
from smf.tasks.facts import FactSizes, write_fact_task

if TYPE_CHECKING:
    from snakemake.script import snakemake

with log_to(snakemake.log[0]):
    spec = dict(snakemake.params.spec)
    seed = spec.pop("seed")
    paths = write_fact_task(Path(snakemake.output.train).parent, seed=seed, sizes=FactSizes(**spec))
    print({name: str(path) for name, path in paths.items()})
