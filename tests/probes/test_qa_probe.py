"""The QA probe on a tiny random Qwen2: batch-invariant greedy generation, the result's fields."""

from __future__ import annotations

import pytest
import torch
from conftest import REQUIRED_KEYS, VARIED_INIT, make_tiny_qwen2

from smf.data.prompts import qa_correct_paper3, qa_prompt
from smf.probes.qa import (
    _generate,
    _greedy,
    chat_prompt,
    generate_answers,
    gold_logprobs,
    probe_prompts,
    qa_accuracy,
)
from smf.probes.scoring import continuation_logprobs

QUESTIONS = [
    "Who was the man behind The Chipmunks?",
    "What star sign is Jamie Lee Curtis?",
    "Which vitamin is fat soluble?",
    "Who?",
    "Which Lloyd Webber musical premiered in the US on 10th December 1993?",
]


def test_left_padded_generation_is_batch_invariant(tokenizer) -> None:
    model = make_tiny_qwen2(initializer_range=VARIED_INIT)
    prompts = [qa_prompt(question) for question in QUESTIONS]
    tokenizer.padding_side = "right"
    batched = generate_answers(model, tokenizer, prompts, max_new_tokens=8, batch_size=3)
    assert tokenizer.padding_side == "right"  # restored afterwards
    one_by_one = [
        generate_answers(model, tokenizer, [prompt], max_new_tokens=8)[0] for prompt in prompts
    ]
    assert batched == one_by_one
    assert len(set(batched)) > 1  # outputs depend on the prompt, so the check has teeth


@pytest.mark.parametrize("protocol", ["paper3", "lm_eval"])
def test_qa_accuracy_result(tokenizer, protocol: str) -> None:
    model = make_tiny_qwen2(initializer_range=VARIED_INIT)
    records = [
        {"id": f"tc_{i}", "question": q, "answer": "David Seville", "aliases": ["David Seville"]}
        for i, q in enumerate(QUESTIONS)
    ]
    result = qa_accuracy(model, tokenizer, records, protocol=protocol, max_new_tokens=6)
    assert result.keys() >= REQUIRED_KEYS
    assert result["n"] == len(records) and result["protocol"] == protocol
    assert len(result["examples"]) == len(records)
    for example, question in zip(result["examples"], QUESTIONS, strict=True):
        assert example["question"] == question
        if protocol == "paper3":
            assert example["correct"] == qa_correct_paper3(example["output"], ["David Seville"])
    assert result["value"] == sum(e["correct"] for e in result["examples"]) / len(records)


def test_a_chat_template_probe_asks_in_the_template_and_scores_gold_after_it(tokenizer) -> None:
    model = make_tiny_qwen2(initializer_range=VARIED_INIT)
    records = [
        {"id": f"tc_{i}", "question": q, "answer": "Seville", "aliases": ["Seville"]}
        for i, q in enumerate(QUESTIONS)
    ]
    with pytest.raises(ValueError, match="no chat template.*chat_template: true"):
        qa_accuracy(model, tokenizer, records, max_new_tokens=4, chat_template=True)
    tokenizer.chat_template = "{% for m in messages %}<user> {{ m['content'] }}{% endfor %} <bot>"
    prompt = chat_prompt(tokenizer, QUESTIONS[0])
    assert prompt == f"<user> {QUESTIONS[0]} <bot>"
    chat = qa_accuracy(
        model, tokenizer, records, max_new_tokens=4, gold_logprob=True, chat_template=True
    )
    plain = qa_accuracy(model, tokenizer, records, max_new_tokens=4, gold_logprob=True)
    assert chat["chat_template"] and not plain["chat_template"]
    asked = generate_answers(
        model, tokenizer, [chat_prompt(tokenizer, q) for q in QUESTIONS], max_new_tokens=4,
        add_special_tokens=False,
    )  # fmt: skip
    assert [a["output"] for a in chat["answers"]] == asked
    assert [a["gold_logprob"] for a in chat["answers"]] != [
        a["gold_logprob"] for a in plain["answers"]
    ]  # scored after the chat prompt, not the plain one
    # a template that ends the assistant's header with a newline: the answer starts the line
    tokenizer.chat_template += "{{ '\\n' }}"  # a trailing newline itself Jinja would strip
    records = records[:1]
    (newline,) = gold_logprobs(
        model,
        tokenizer,
        probe_prompts(records, tokenizer=tokenizer, chat_template=True),
        records,
        4,
    )
    expected = continuation_logprobs(model, tokenizer, [(f"<user> {QUESTIONS[0]} <bot>\n",
                                                         "Seville")], 4)  # fmt: skip
    assert newline == pytest.approx(expected[0])


def test_gold_logprob_is_the_teacher_forced_answer_after_the_prompt(tokenizer) -> None:
    model = make_tiny_qwen2(initializer_range=VARIED_INIT)
    records = [
        {"id": "a", "question": QUESTIONS[0], "answer": "David Seville", "aliases": ["x"]},
        {"id": "b", "question": QUESTIONS[1], "aliases": ["Scorpio", "scorpius"]},
    ]
    plain = qa_accuracy(model, tokenizer, records, max_new_tokens=4)
    result = qa_accuracy(model, tokenizer, records, max_new_tokens=4, gold_logprob=True)
    assert "gold_mean_logprob" not in plain and "gold_logprob" not in plain["answers"][0]
    assert [a["output"] for a in result["answers"]] == [a["output"] for a in plain["answers"]]
    per_token = []
    for answer, rec, gold in zip(
        result["answers"], records, ["David Seville", "Scorpio"], strict=True
    ):
        context = tokenizer(qa_prompt(rec["question"]), add_special_tokens=False)["input_ids"]
        target = tokenizer(" " + gold, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([context + target])
        log_probs = model(input_ids=ids).logits[0, :-1].log_softmax(-1)
        expected = sum(log_probs[len(context) - 1 + k, t].item() for k, t in enumerate(target))
        assert answer["gold_tokens"] == len(target)
        assert answer["gold_logprob"] == pytest.approx(expected, abs=1e-4)
        per_token.append(expected / len(target))
    assert result["gold_mean_logprob"] == pytest.approx(sum(per_token) / 2, abs=1e-4)


def test_qa_record_without_aliases_is_rejected(tiny_qwen2, tokenizer) -> None:
    with pytest.raises(ValueError, match="record 1.*aliases"):
        qa_accuracy(
            tiny_qwen2,
            tokenizer,
            [{"question": "Q?", "aliases": ["a"]}, {"id": "x", "question": "Q?"}],
        )


@pytest.mark.parametrize("stops", [(), ("\n", ".", ","), ("e", " ")])
def test_greedy_with_rows_leaving_matches_model_generate(tokenizer, stops) -> None:
    """The KV-cache loop that drops stopped rows decodes exactly what model.generate does on
    the same left-padded batch (stop strings that end rows early, or none)."""
    model = make_tiny_qwen2(initializer_range=VARIED_INIT)
    model.generation_config.eos_token_id = tokenizer.eos_token_id  # else generate never pads
    rows = [tokenizer(qa_prompt(q))["input_ids"] for q in QUESTIONS]
    plain = _greedy(model, tokenizer, rows, 12, stops)
    reference = _generate(model, tokenizer, rows, 12, stops)
    for row, ref in zip(plain, reference, strict=True):  # generate pads rows that stopped
        assert ref == row + [tokenizer.pad_token_id] * (len(ref) - len(row))
    assert [tokenizer.decode(t, skip_special_tokens=True) for t in plain] == [
        tokenizer.decode(t, skip_special_tokens=True) for t in reference
    ]
    if "e" in stops:
        assert len({len(t) for t in plain}) > 1  # some rows stopped early
