"""Pipeline stage functions: clear errors for unreachable models, no silent fallbacks."""

import huggingface_hub.constants
import pytest

from smf.pipeline import stages


@pytest.fixture()
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def test_unreachable_base_model_says_what_was_tried_and_how_to_fix(tmp_path, offline):
    base = {"model": "no-such-org/no-such-model", "dtype": "float32"}
    with pytest.raises(RuntimeError) as err:
        stages.build_base(base, tmp_path / "base", device="cpu", work_dir=tmp_path / "w")
    message = str(err.value)
    assert "no-such-org/no-such-model" in message
    assert "base.model" in message and "HF_HUB_OFFLINE" in message
    assert not (tmp_path / "base").exists()  # nothing written, no fallback model


def test_fingerprint_changes_with_any_parameter():
    a = stages.fingerprint({"lr": 1e-3, "epochs": 3}, 0)
    assert a == stages.fingerprint({"epochs": 3, "lr": 1e-3}, 0)  # key order is irrelevant
    assert a != stages.fingerprint({"lr": 2e-3, "epochs": 3}, 0)
    assert a != stages.fingerprint({"lr": 1e-3, "epochs": 3}, 1)


def test_a_variants_background_keys_reach_its_background_only():
    """A retrofit variant's `background:` keys replace the top-level ones for its statistics;
    its retrofit model neither receives them nor goes stale when they change."""
    import copy

    from smf.pipeline import freshness, variants

    config = {
        "retrofit": {"layers": [1], "alpha_init": 1.0, "seed": 0, "recovery": {"dataset": "r"}},
        "background": {"dataset": "bg", "max_length": 64, "batch_size": 8, "shuffle_seed": None,
                       "precision": "fp32"},
        "retrofit_variants": {"p3": {"alpha_init": 0.01, "background": {
            "dataset": "oasst", "shuffle_seed": "run", "precision": "paper3_bf16"}}},
        "data": {"bg": {"kind": "text"}, "oasst": {"kind": "text", "limit": 2000}},
    }  # fmt: skip
    assert variants.retrofit_settings(config, "p3") == {"layers": [1], "alpha_init": 0.01,
                                                        "seed": 0}  # fmt: skip
    assert variants.retrofit_settings(config, "") == {"layers": [1], "alpha_init": 1.0, "seed": 0}
    assert variants.background_settings(config, "") == config["background"]
    assert variants.background_settings(config, "p3") == {
        "dataset": "oasst", "max_length": 64, "batch_size": 8, "shuffle_seed": "run",
        "precision": "paper3_bf16",
    }  # fmt: skip
    assert variants.background_refs(config) == {"retrofit_variants.p3.background.dataset": "oasst"}
    changed = copy.deepcopy(config)
    changed["retrofit_variants"]["p3"]["background"]["batch_size"] = 1
    changed["data"]["oasst"]["limit"] = 1000
    assert freshness.variant_part(config, "p3") != freshness.variant_part(changed, "p3")
    model = [freshness.variant_part(c, "p3", background=False) for c in (config, changed)]
    assert model[0] == model[1] == [{"alpha_init": 0.01}, {}]


def test_job_log_captures_prints_library_warnings_and_tracebacks(tmp_path):
    from transformers.utils import logging as hf_logging

    log = tmp_path / "job.log"
    with pytest.raises(ZeroDivisionError), stages.log_to(log):
        print("progress line")
        hf_logging.get_logger("transformers.smf_test").warning("library warning")
        1 / 0  # noqa: B018
    text = log.read_text()
    assert "progress line" in text and "library warning" in text
    assert "ZeroDivisionError" in text
