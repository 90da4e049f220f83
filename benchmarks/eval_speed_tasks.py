"""The two sides of benchmarks/eval_speed.py: lm-eval's own tasks (their YAMLs `include`d
unchanged, data read from local JSON Lines, as tests/probes/test_lm_eval_agreement.py drives them)
and
the project's `lm_eval` protocol probes, on the same records; and the per-question comparison."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from functools import partial
from pathlib import Path

from smf.probes.lm_eval_task import write_local_task

REPO = Path(__file__).resolve().parents[1]


def _harness(lm, folder: Path, task: str) -> Callable[[], tuple[dict, list[dict]]]:
    def run() -> tuple[dict, list[dict]]:
        from lm_eval import simple_evaluate
        from lm_eval.tasks import TaskManager

        out = simple_evaluate(
            model=lm, tasks=[task], task_manager=TaskManager(include_path=str(folder)),
            log_samples=True, num_fewshot=0,
        )  # fmt: skip
        return out["results"][task], sorted(out["samples"][task], key=lambda s: s["doc_id"])

    return run


def _last_pages_rows(rows: list[str], n_pages: int) -> list[str]:
    from smf.data.prompts import _is_page_heading

    headings = [i for i, row in enumerate(rows) if _is_page_heading(row)]
    return rows[headings[-n_pages] :]


def build_runs(model, tokenizer, args: argparse.Namespace, folder: Path):
    """({task: {"lm_eval": fn, "project": fn}}, {task: records described}, check) where
    check(timings) gives one line per task comparing the two sides' per-question results."""
    import sys

    from lm_eval.models.huggingface import HFLM

    from smf.data import prompts
    from smf.probes import qa, scoring

    sys.path.insert(0, str(REPO / "tests"))
    import real_records

    real, batch = args.fixtures, args.batch_size
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch)
    runs, described, checks = {}, {}, {}
    if "medmcqa" in args.tasks:
        records = real_records.medmcqa_split(real)[1][: args.medmcqa]
        rows = [
            {"question": r["question"], "cop": r["answer"]}
            | dict(zip(("opa", "opb", "opc", "opd"), r["options"], strict=True))
            for r in records
        ]
        task = write_local_task(folder, "speed_medmcqa", "medmcqa/medmcqa.yaml", rows, "validation")
        runs["medmcqa"] = {
            "lm_eval": _harness(lm, folder, task),
            "project": partial(
                scoring.multiple_choice_accuracy,
                model,
                tokenizer,
                records,
                protocol=prompts.LM_EVAL,
                batch_size=batch,
            ),  # fmt: skip
        }
        described["medmcqa"] = f"{len(records)} questions"
        checks["medmcqa"] = _check_medmcqa
    if "triviaqa" in args.tasks:
        records = real_records.triviaqa(real)[: args.triviaqa]
        rows = [
            {"question": r["question"], "answer": {"value": r["answer"], "aliases": r["aliases"]}}
            for r in records
        ]
        generation = {"until": list(prompts.LM_EVAL_QA_STOPS), "do_sample": False,
                      "temperature": 0.0, "max_gen_toks": args.max_new_tokens}  # fmt: skip
        task = write_local_task(
            folder, "speed_triviaqa", "triviaqa/default.yaml", rows, "validation",
            generation_kwargs=generation,
        )  # fmt: skip
        runs["triviaqa"] = {
            "lm_eval": _harness(lm, folder, task),
            "project": partial(
                qa.qa_accuracy,
                model,
                tokenizer,
                records,
                protocol=prompts.LM_EVAL,
                batch_size=batch,
                max_new_tokens=args.max_new_tokens,
            ),  # fmt: skip
        }
        described["triviaqa"] = f"{len(records)} questions, greedy <= {args.max_new_tokens} tokens"
        checks["triviaqa"] = _check_triviaqa
    if "wikitext" in args.tasks:
        runs["wikitext"], described["wikitext"] = _wikitext(model, tokenizer, args, folder)
        checks["wikitext"] = _check_wikitext

    def check(timings: dict) -> list[str]:
        return [
            checks[task](sides["lm_eval"]["result"], sides["project"]["result"])
            for task, sides in timings.items()
        ]

    return runs, described, check


def _check_medmcqa(theirs, ours: dict) -> str:
    _, samples = theirs
    their_pred = [max(range(4), key=lambda i: (s["resps"][i][0][0], -i)) for s in samples]
    same = sum(
        p == "ABCD".index(a["predicted"]) for p, a in zip(their_pred, ours["answers"], strict=True)
    )
    acc = theirs[0]["acc,none"]
    n, value = len(samples), ours["value"]
    return f"medmcqa: {same}/{n} predictions identical; acc {value:.4f} vs {acc:.4f}"


def _check_triviaqa(theirs, ours: dict) -> str:
    from smf.data.prompts import truncate_at_stops

    results, samples = theirs
    same = sum(
        truncate_at_stops(a["output"]).strip() == s["filtered_resps"][0]
        for a, s in zip(ours["answers"], samples, strict=True)
    )
    em = results["exact_match,remove_whitespace"]
    return f"triviaqa: {same}/{len(samples)} answers identical; EM {ours['value']:.4f} vs {em:.4f}"


def _check_wikitext(theirs, ours: dict) -> str:
    theirs_ppl = theirs[0]["word_perplexity,none"]
    rel = abs(ours["value"] - theirs_ppl) / theirs_ppl
    return f"wikitext: word perplexity {ours['value']:.4f} vs {theirs_ppl:.4f} (rel diff {rel:.1e})"


def _wikitext(model, tokenizer, args: argparse.Namespace, folder: Path) -> tuple[dict, str]:
    """Both sides of the WikiText-2 task (lm-eval's HFLM gets the same window) and its label."""
    import real_records  # on sys.path since build_runs
    from lm_eval.models.huggingface import HFLM

    from smf.data import prompts
    from smf.probes import perplexity

    window = args.window or perplexity.model_max_length(model, tokenizer)
    pages = real_records.wikitext2_pages_lm_eval(args.fixtures)[-args.wikitext_pages :]
    rows = _last_pages_rows(real_records.wikitext2_raw_rows(args.fixtures), args.wikitext_pages)
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=args.batch_size, max_length=window)
    task = write_local_task(folder, "speed_wikitext", "wikitext/wikitext.yaml",
                       [{"page": p} for p in pages], "test")  # fmt: skip
    runs = {
        "lm_eval": _harness(lm, folder, task),
        "project": partial(
            perplexity.perplexity,
            model,
            tokenizer,
            rows,
            protocol=prompts.LM_EVAL,
            max_length=window,
            batch_size=args.batch_size,
        ),  # fmt: skip
    }
    return runs, f"{len(pages)} pages, window {window:,}"
