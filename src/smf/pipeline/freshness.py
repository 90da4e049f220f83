"""Keep what a result reports tied to the config of the run it reports (rules/common.smk).

Snakemake reruns a job when its own params change or an input is newer, but it does not rebuild
a missing intermediate whose consumers are up to date. After a failed or killed retrain
Snakemake has deleted the run's model, yet the old evaluation JSONs and tables still look
current, and the next run printed "Nothing to be done" while the table showed the old config's
numbers. Each evaluation and report rule therefore carries, in its params, a fingerprint of the
config of every run it reports: a changed run config makes them out of date even when the
training outputs are gone, so the same command retrains (resuming its checkpoint) and
re-reports. The fingerprints hold config only (no file is read), so the DAG stays fast.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

# Config sections every run's result depends on (the shared chain: demo world, base, retrofit,
# background, and the data sets they and the task read; a retrofit variant only in the runs that
# start from it, see variant_part). The arms, probes, eval and seeds
# sections are not here: an arm's own config enters only its own runs' fingerprints, so changing
# one arm reruns that arm only; a probe's data reaches its evaluations through the data file.
CHAIN_KEYS = ("demo", "task", "seeding", "base", "retrofit", "background")
CHAIN_EXTRA = ("device",)


def _datasets(node: object) -> list[str]:
    """Every `dataset:` value inside a config section (task, recovery, background, ...)."""
    if isinstance(node, Mapping):
        found = [node["dataset"]] if isinstance(node.get("dataset"), str) else []
        return found + [name for value in node.values() for name in _datasets(value)]
    return []


def fingerprint(*parts: object) -> str:
    """Stable short hash of JSON-able config parts (key order does not matter)."""
    blob = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def chain_fingerprint(config: Mapping, code: str, *extra_datasets: str) -> str:
    """The fingerprint of the shared chain every model's result depends on (`extra_datasets`:
    an experiment's own task data)."""
    sections = {key: config.get(key) for key in CHAIN_KEYS + CHAIN_EXTRA}
    names = sorted(set(_datasets(sections)) | set(extra_datasets))
    data = {name: config["data"].get(name) for name in names}
    return fingerprint(sections, data, code)


def variant_part(config: Mapping, variant: str | None, background: bool = True) -> object:
    """A retrofit variant's config and data, for the models built from it only: adding a
    variant must not make every other model's results out of date. The retrofit model itself
    (`background` false) does not depend on the variant's background settings."""
    if variant is None:
        return None
    spec = config["retrofit_variants"].get(variant)
    if not background and spec and "background" in spec:
        spec = {k: v for k, v in spec.items() if k != "background"}
    return [spec, {name: config["data"].get(name) for name in sorted(set(_datasets(spec)))}]


def run_outputs_gaps(runs: Mapping[str, Iterable[str]]) -> list[str]:
    """Warnings for runs whose trained artifact is cached but whose log or summary is gone.

    `runs` maps a run's artifact path to its other outputs (train_log.jsonl, summary.json).
    The finetune rule writes them together, so rebuilding a missing one retrains the run:
    say so before it happens rather than retrain silently.
    """
    warnings = []
    for artifact, others in runs.items():
        missing = [path for path in others if not Path(path).exists()]
        if Path(artifact).exists() and missing:
            warnings.append(
                f"{', '.join(missing)} missing while {artifact} is cached: the finetune job "
                f"that writes them RETRAINS this run (resuming its checkpoint if one exists), "
                "then its evaluations and the report rerun. Restore the file from a backup to "
                "avoid the retrain."
            )
    return warnings


def eval_gaps(paths: Iterable[str]) -> list[str]:
    """Warnings for evaluation JSONs that are missing (where others of the same model are
    cached) or visibly truncated; the evaluate job writes one folder per model."""
    folders: dict[str, list[Path]] = {}
    for path in map(Path, paths):
        folders.setdefault(str(path.parent), []).append(path)
    warnings = []
    for folder, files in folders.items():
        missing = [str(path) for path in files if not path.exists()]
        if missing and len(missing) < len(files):
            warnings.append(
                f"{', '.join(missing)} missing: the evaluation that writes {folder}/ reruns "
                "(all its probes, one model load), then the report reruns."
            )
        for path in files:
            if path.exists() and not _ends_like_json(path):
                warnings.append(
                    f"{path}: truncated (does not end with '}}'). Rebuild it: `rm {path}` and "
                    "run the same snakemake command again."
                )
    return warnings


def _ends_like_json(path: Path) -> bool:
    """A cheap truncation check (the last bytes only): a JSON object ends with '}'."""
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - 64))
        return f.read().rstrip().endswith(b"}")


def warn(messages: Iterable[str]) -> None:
    """Print each warning to stderr where a dry run shows it."""
    for message in messages:
        print(f"WARNING: {message}", file=sys.stderr)


def clear_stale_logs(paths: Iterable[str]) -> list[str]:
    """Delete the logs of jobs about to be submitted to a cluster; returns those deleted.

    A local job's log is deleted when the job starts; a cluster job's only once it runs on
    its node, so a submission that fails (sbatch error) left the previous run's log in place
    and `show-failed-logs` printed it as this failure's."""
    deleted = []
    for path in paths:
        if Path(path).is_file():
            Path(path).unlink()
            deleted.append(path)
    return deleted
