"""Rule retention: one model's accuracy on the base model's correctly answered questions."""

import json
from pathlib import Path
from typing import TYPE_CHECKING

from smf.pipeline import stages
from smf.report import retention

if TYPE_CHECKING:
    from snakemake.script import snakemake

with stages.log_to(snakemake.log[0]):
    result = retention.retention_result(
        json.loads(Path(snakemake.input.answers).read_text()),
        json.loads(Path(snakemake.input.retained).read_text()),
    )
    stages.write_json(result, snakemake.output[0])
    print({k: result[k] for k in ("model", "probe", "value", "n")})
