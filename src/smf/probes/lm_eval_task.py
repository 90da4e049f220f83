"""One lm-evaluation-harness task over local records: how the agreement tests and
benchmarks/eval_speed.py run lm-eval's own task definitions on the same records as our probes
(no hub access: the task's YAML is lm-eval's, only its data comes from a JSON Lines file)."""

from __future__ import annotations

import json
from pathlib import Path


def write_local_task(
    folder: Path, name: str, upstream: str, rows: list[dict], split: str, **overrides
) -> str:
    """Write `name`.yaml (including lm-eval's `upstream` YAML, e.g. "medmcqa/medmcqa.yaml")
    and `name`.jsonl (the rows) into `folder`; returns the task name for a TaskManager whose
    include_path is `folder`. `overrides` replace keys of the task config."""
    import lm_eval  # a dev extra: only the agreement tests and the benchmark need it

    data_file = folder / f"{name}.jsonl"
    data_file.write_text("".join(json.dumps(row) + "\n" for row in rows))
    config = {
        "task": name,
        "include": str(Path(lm_eval.__file__).parent / "tasks" / upstream),
        "dataset_path": "json",
        "dataset_name": None,
        "dataset_kwargs": {"data_files": {split: str(data_file)}},
        "training_split": None,
        "validation_split": split if split == "validation" else None,
        "test_split": split,
    } | overrides
    (folder / f"{name}.yaml").write_text(json.dumps(config))  # JSON is YAML
    return name
