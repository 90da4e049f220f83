"""Rule retention_set: the questions the base model answers correctly (fixed once)."""

import json
from pathlib import Path
from typing import TYPE_CHECKING

from smf.pipeline import stages
from smf.report import retention

if TYPE_CHECKING:
    from snakemake.script import snakemake

with stages.log_to(snakemake.log[0]):
    base = json.loads(Path(snakemake.input[0]).read_text())
    retained = retention.retained_set(base)
    stages.write_json(retained, snakemake.output[0])
    print(f"{len(retained['ids'])} of {retained['questions']} questions retained")
