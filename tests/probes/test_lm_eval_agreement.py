"""The `lm_eval` protocols agree with lm-evaluation-harness itself on a real model and records.

lm-evaluation-harness runs its own tasks (medmcqa, triviaqa, wikitext: their YAMLs are
`include`d unchanged, only the data source is pointed at local files) through its HFLM wrapper
around the same SmolLM2 model; this project's probes run on the same records. Compared:
MedMCQA per-choice log-likelihoods (question by question, 1e-4 relative), TriviaQA generations
after lm-eval's filters and exact match (question by question), WikiText word perplexity
(0.5 %). Needs the SmolLM2 GGUF (tools/fetch_smollm2.py) and ../shared/fixtures/real.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import real_records
import torch

from smf.data import prompts
from smf.probes import perplexity, qa, scoring
from smf.probes.lm_eval_task import write_local_task

lm_eval = pytest.importorskip("lm_eval", reason="needs lm-evaluation-harness (pip install lm_eval)")
from lm_eval.models.huggingface import HFLM  # noqa: E402
from lm_eval.tasks import TaskManager  # noqa: E402

pytestmark = pytest.mark.slow

# Sizes cut for CI time; README's agreement table is from a run with 40 questions, 2 pages
N_MEDMCQA = 20  # eval-part questions
N_WIKITEXT_PAGES = 1  # the last page: several windows of 1,024 SmolLM2 tokens
WIKITEXT_WINDOW = 1024  # both sides; the default (model maximum) is checked separately
LOGLIK_RTOL = 1e-4
WORD_PERPLEXITY_RTOL = 5e-3
BATCH_SIZE = 8
# lm-eval's triviaqa generates up to 256 tokens (and so does our lm_eval protocol by default);
# a row that never says "\n", "." or "," keeps its batch going that long, which costs minutes
# on a CPU. Both sides get the same smaller budget here; the default is checked separately.
QA_MAX_NEW_TOKENS = 48
N_TRIVIAQA = 16  # of the 32 triviaqa_small questions (all 32 agreed too, in a longer run)


def _run(lm: HFLM, folder: Path, task: str) -> tuple[dict, list[dict]]:
    from lm_eval import simple_evaluate

    out = simple_evaluate(
        model=lm, tasks=[task], task_manager=TaskManager(include_path=str(folder)),
        log_samples=True, num_fewshot=0,
    )  # fmt: skip
    samples = sorted(out["samples"][task], key=lambda s: s["doc_id"])
    return out["results"][task], samples


@pytest.fixture(scope="module")
def harness(smollm2, tmp_path_factory):
    model, tokenizer = smollm2
    folder = tmp_path_factory.mktemp("lm_eval_tasks")
    return HFLM(pretrained=model, tokenizer=tokenizer, batch_size=BATCH_SIZE), folder


def test_medmcqa_loglikelihoods_agree(smollm2, harness, real_fixtures) -> None:
    model, tokenizer = smollm2
    lm, folder = harness
    _, records = real_records.medmcqa_split(real_fixtures)
    records = records[:N_MEDMCQA]
    rows = [
        {"question": r["question"], "cop": r["answer"]}
        | dict(zip(("opa", "opb", "opc", "opd"), r["options"], strict=True))
        for r in records
    ]
    task = write_local_task(folder, "smf_medmcqa", "medmcqa/medmcqa.yaml", rows, "validation")
    results, samples = _run(lm, folder, task)

    requests = [
        (prompts.mcq_prompt(r, prompts.LM_EVAL), option)
        for r in records
        for option in prompts.mcq_continuations(r, prompts.LM_EVAL)
    ]
    ours = scoring.continuation_logprobs(model, tokenizer, requests, batch_size=BATCH_SIZE * 4)
    assert len(samples) == len(records)
    worst = 0.0
    for index, sample in enumerate(samples):
        assert [tuple(a) for a in sample["arguments"]] == requests[4 * index : 4 * index + 4]
        theirs = [resp[0][0] for resp in sample["resps"]]
        mine = [total for total, _ in ours[4 * index : 4 * index + 4]]
        assert mine == pytest.approx(theirs, rel=LOGLIK_RTOL), f"question {index}"
        worst = max([worst] + [abs(m - t) / abs(t) for m, t in zip(mine, theirs, strict=True)])
    print("medmcqa largest relative log-likelihood difference", worst)

    accuracy = scoring.multiple_choice_accuracy(
        model, tokenizer, records, protocol=prompts.LM_EVAL, batch_size=BATCH_SIZE
    )
    assert accuracy["value"] == pytest.approx(results["acc,none"])
    assert accuracy["acc_norm"] == pytest.approx(results["acc_norm,none"])
    print("medmcqa acc ours/lm-eval", accuracy["value"], results["acc,none"])


def test_triviaqa_generations_agree(smollm2, harness, real_fixtures) -> None:
    model, tokenizer = smollm2
    lm, folder = harness
    records = real_records.triviaqa(real_fixtures)[:N_TRIVIAQA]
    rows = [
        {"question": r["question"], "answer": {"value": r["answer"], "aliases": r["aliases"]}}
        for r in records
    ]
    generation = {"until": list(prompts.LM_EVAL_QA_STOPS), "do_sample": False,
                  "temperature": 0.0, "max_gen_toks": QA_MAX_NEW_TOKENS}  # fmt: skip
    task = write_local_task(
        folder, "smf_triviaqa", "triviaqa/default.yaml", rows, "validation",
        generation_kwargs=generation,
    )  # fmt: skip
    results, samples = _run(lm, folder, task)
    ours = qa.qa_accuracy(
        model, tokenizer, records, protocol=prompts.LM_EVAL, batch_size=BATCH_SIZE,
        max_new_tokens=QA_MAX_NEW_TOKENS,
    )  # fmt: skip
    assert scoring.QA_MAX_NEW_TOKENS[prompts.LM_EVAL] == lm.max_gen_toks  # the default: 256
    assert len(samples) == len(records)
    for sample, answer in zip(samples, ours["answers"], strict=True):
        filtered = prompts.truncate_at_stops(answer["output"]).strip()
        assert filtered == sample["filtered_resps"][0], sample["doc"]["question"]
        assert answer["correct"] == bool(sample["exact_match"]), sample["doc"]["question"]
    assert ours["value"] == pytest.approx(results["exact_match,remove_whitespace"])
    print("triviaqa EM ours/lm-eval", ours["value"], results["exact_match,remove_whitespace"])


def _last_pages_rows(rows: list[str], n_pages: int) -> list[str]:
    """The raw rows of the file's last `n_pages` pages. (A cut before a later page's heading
    would leave the cut page one trailing "\n" longer than the same page in the whole file.)"""
    headings = [i for i, row in enumerate(rows) if prompts._is_page_heading(row)]
    return rows[headings[-n_pages] :]


def test_wikitext_word_perplexity_agrees(smollm2, harness, real_fixtures) -> None:
    model, tokenizer = smollm2
    _, folder = harness
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=1, max_length=WIKITEXT_WINDOW)
    pages = real_records.wikitext2_pages_lm_eval(real_fixtures)[-N_WIKITEXT_PAGES:]
    rows_in = [{"page": page} for page in pages]
    task = write_local_task(folder, "smf_wikitext", "wikitext/wikitext.yaml", rows_in, "test")
    results, samples = _run(lm, folder, task)
    rows = _last_pages_rows(real_records.wikitext2_raw_rows(real_fixtures), N_WIKITEXT_PAGES)
    assert prompts.wikitext_documents(rows) == pages
    ours = perplexity.perplexity(
        model, tokenizer, rows, protocol=prompts.LM_EVAL, max_length=WIKITEXT_WINDOW
    )
    assert ours["tokens_scored"] > WIKITEXT_WINDOW  # some page spans several windows
    assert ours["words"] == sum(s["word_perplexity"][1] for s in samples)
    theirs = results["word_perplexity,none"]
    assert ours["value"] == pytest.approx(theirs, rel=WORD_PERPLEXITY_RTOL)
    assert math.isfinite(ours["value"])
    print("wikitext word perplexity ours/lm-eval", ours["value"], theirs, ours["words"])


def test_default_window_is_lm_evals(smollm2, real_fixtures) -> None:
    """With no max_length, the lm_eval perplexity window is what HFLM resolves (8,192 here)."""
    model, tokenizer = smollm2
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=1)
    assert perplexity.model_max_length(model, tokenizer) == lm.max_length == 8192
    rows = _last_pages_rows(real_records.wikitext2_raw_rows(real_fixtures), 1)
    result = perplexity.perplexity(model, tokenizer, rows, protocol=prompts.LM_EVAL)
    assert result["max_length"] == lm.max_length
    assert torch.isfinite(torch.tensor(result["value"]))
