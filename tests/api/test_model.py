"""The public API on your own model: exact retrofit, architectures, save and reload."""

import subprocess
import sys

import pytest
import torch
from conftest import REPO, make_tiny_qwen2
from smf_models import make_tiny_llama, recovered, small_config, values
from transformers import GPT2Config, GPT2LMHeadModel

import smf


@pytest.mark.parametrize("make", [make_tiny_qwen2, make_tiny_llama], ids=["qwen2", "llama"])
def test_logits_are_bit_identical_at_retrofit(make):
    ids = torch.randint(0, 320, (2, 17), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, 12:] = 0
    base = make(seed=4)
    with torch.no_grad():
        before = base(input_ids=ids, attention_mask=mask).logits
        model = smf.get_smf_model(base, small_config())
        after = model(input_ids=ids, attention_mask=mask).logits
    assert model.smf_retrofit.layers == [1, 3]
    assert torch.equal(before, after), (before - after).abs().max()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {f"model.layers.{i}.mlp.memory.values" for i in (1, 3)}


def test_unsupported_architecture_is_named():
    gpt2 = GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=100))
    with pytest.raises(ValueError, match=r"Qwen2 and Llama.*GPT2LMHeadModel.*'gpt2'"):
        smf.get_smf_model(gpt2, small_config())


def test_save_and_reload_give_the_same_model(tokenizer, tmp_path):
    model, _ = recovered(tokenizer)
    path = smf.save_pretrained(model, tmp_path / "mem")
    assert sorted(p.name for p in path.parent.iterdir()) == ["memory.json", "memory.safetensors"]
    reloaded = smf.from_pretrained(make_tiny_qwen2(seed=1), tmp_path / "mem")
    for layer, table in values(model).items():
        assert torch.equal(table, values(reloaded)[layer])
    ids = torch.randint(0, 320, (1, 9), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(model.eval()(ids).logits, reloaded(ids).logits)
    assert reloaded.smf_config == model.smf_config
    assert not any(p.requires_grad for p in reloaded.parameters())
    trainable = smf.from_pretrained(make_tiny_qwen2(seed=1), tmp_path / "mem", is_trainable=True)
    assert sum(p.requires_grad for p in trainable.parameters()) == 2


def test_reload_refuses_another_base(tokenizer, tmp_path):
    model, _ = recovered(tokenizer)
    smf.save_pretrained(model, tmp_path / "mem")
    with pytest.raises(ValueError, match=r"built on Qwen2ForCausalLM.*weights differ in model\."):
        smf.from_pretrained(make_tiny_qwen2(seed=2), tmp_path / "mem")  # same shape, other weights
    with pytest.raises(ValueError, match=r"architecture Qwen2ForCausalLM != LlamaForCausalLM"):
        smf.from_pretrained(make_tiny_llama(seed=1), tmp_path / "mem")
    # the same base loaded in bf16 is the same base
    smf.from_pretrained(make_tiny_qwen2(seed=1).to(torch.bfloat16), tmp_path / "mem")


def test_config_checks_its_choices():
    with pytest.raises(ValueError, match="method"):
        small_config(method="random")
    with pytest.raises(ValueError, match="top_t"):
        small_config(top_t=65)  # 8 ** 2 slots
    with pytest.raises(ValueError, match="background"):
        small_config().row_selection(None)
    assert smf.SMFConfig.from_dict(small_config().to_dict()) == small_config()


def test_import_smf_is_cheap():
    code = "import sys, smf; assert smf.__version__; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# what only the pipeline needs: `pip install smf` (no extra) has none of them
PIPELINE_ONLY = ["snakemake", "pandas", "matplotlib", "tabulate", "lm_eval", "jsonschema",
                 "datasets", "peft"]  # fmt: skip

BLOCKED = """
import importlib.util, sys
BLOCKED = set(sys.argv[1].split(","))
class Absent:
    # a real import of a blocked package fails, as if it were not installed
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")
        return None
sys.meta_path.insert(0, Absent())
# and probes (importlib.util.find_spec, as torch and transformers use) do not find it
_find_spec = importlib.util.find_spec
importlib.util.find_spec = lambda name, package=None: (
    None if name.partition(".")[0] in BLOCKED else _find_spec(name, package))
import smf
from smf import (SMFConfig, SMFTrainer, compute_background, from_pretrained, get_smf_model,
                 recover, save_pretrained)
import smf.api
print(sorted(m for m in BLOCKED if m in sys.modules))
"""


def test_public_api_imports_without_the_pipelines_extras():
    cmd = [sys.executable, "-c", BLOCKED, ",".join(PIPELINE_ONLY)]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "[]"
