"""Retention from cached qa answers, and the GGUF header read that the config checks use."""

from __future__ import annotations

import pytest

from smf.data.gguf import gguf_layer_count, is_gguf
from smf.report.retention import retained_set, retention_result


def _qa(model: str, verdicts: dict[str, bool], protocol: str = "paper3") -> dict:
    arm, _, seed = model.partition("-seed")
    return {
        "model": model, "arm": arm, "seed": int(seed) if seed else None, "probe": "triviaqa",
        "kind": "qa", "protocol": protocol, "n": len(verdicts),
        "answers": [{"id": i, "output": "x", "correct": c} for i, c in verdicts.items()],
    }  # fmt: skip


def test_retention_counts_only_base_correct_questions() -> None:
    retained = retained_set(_qa("base", {"q1": True, "q2": False, "q3": True, "q4": True}))
    assert retained["ids"] == ["q1", "q3", "q4"] and retained["questions"] == 4
    # the model gains q2 (not in the value, counted apart) and loses q3
    result = retention_result(
        _qa("lora-seed0", {"q1": True, "q2": True, "q3": False, "q4": True}), retained
    )
    assert result["value"] == pytest.approx(2 / 3)
    assert result["n"] == 3 and result["lost_ids"] == ["q3"]
    assert result["answers"] == [
        {"id": "q1", "correct": True},
        {"id": "q3", "correct": False},
        {"id": "q4", "correct": True},
    ]  # per retained question: what the report resamples
    assert result["probe"] == "triviaqa_retention" and result["seed"] == 0
    # both directions: 1 lost, 1 gained of the 1 the base model got wrong; McNemar p = 1
    assert result["gained_ids"] == ["q2"] and result["base_wrong"] == 1
    assert result["mcnemar_p"] == pytest.approx(1.0)


def test_retention_refuses_undefined_or_mismatched_sets() -> None:
    with pytest.raises(ValueError, match="none of the 2 questions"):
        retained_set(_qa("base", {"q1": False, "q2": False}))
    retained = retained_set(_qa("base", {"q1": True, "q2": False}))
    with pytest.raises(ValueError, match="not answered"):
        retention_result(_qa("full-seed1", {"q2": True}), retained)
    with pytest.raises(ValueError, match="protocol"):
        retention_result(_qa("full-seed1", {"q1": True}, protocol="lm_eval"), retained)


def test_gguf_layer_count_reads_the_header(tmp_path) -> None:
    gguf = pytest.importorskip("gguf")
    path = tmp_path / "tiny.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny")
    writer.add_array("tokenizer.ggml.tokens", ["a", "b"])
    writer.add_context_length(64)
    writer.add_block_count(7)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.close()
    assert is_gguf(path) and not is_gguf("HuggingFaceTB/SmolLM2-135M-Instruct")
    assert gguf_layer_count(path) == 7
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"NOPE" + bytes(20))
    with pytest.raises(ValueError, match="not a GGUF file"):
        gguf_layer_count(bad)
