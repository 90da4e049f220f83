"""SMFTrainer: the Hugging Face Trainer running the pipeline's SMF steps, to the last bit."""

import sys
from pathlib import Path

import pytest
import torch
from transformers import TrainerCallback

import smf
from smf.method.retrofit import memories
from smf.training.arms import setup_smf
from smf.training.config import TrainConfig
from smf.training.loop import train

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))
from smf_models import FACTS, recovered, twin, values  # noqa: E402


def config(**kw) -> TrainConfig:
    """5 steps; the loop caps max_steps at `epochs` epochs, the Trainer does not: 2 cover them"""
    base = dict(lr=0.05, epochs=2, max_steps=5, micro_batch_size=2, grad_accum=2,
                warmup_steps=2, checkpoint_every=0, seed=3)  # fmt: skip
    base.update(kw)
    return TrainConfig(**base)


def run_loop(model, tokenizer, background, cfg, tmp_path):
    conf = model.smf_config
    _, opt = setup_smf(model, cfg, conf.optimizer)
    train(model, tokenizer, FACTS, cfg, opt, work_dir=tmp_path / "loop", fingerprint="x",
          selection=conf.row_selection(background), progress=False)  # fmt: skip
    return values(model)


def trainer(model, tokenizer, background, cfg, out, **args):
    return smf.SMFTrainer(
        clip=cfg.clip,
        model=model,
        args=smf.training_arguments(cfg, out, use_cpu=True, **args),  # where the loop runs
        train_dataset=smf.TokenizedTexts(tokenizer, FACTS, cfg.max_length, cfg.append_eos),
        background=background,
        processing_class=tokenizer,
    )


@pytest.mark.parametrize(
    ("smf_kw", "cfg_kw"),
    [
        ({}, {}),
        ({"optimizer": "sgd", "method": "kl", "loss_weighting": "tokens"}, {"grad_accum": 3}),
        ({"optimizer": "masked_adamw", "select_per": "micro_batch"}, {"clip": "torch"}),
        ({}, {"precision": "bf16_autocast"}),  # the Trainer's bf16=True
    ],
    ids=["adam-tfidf", "sgd-kl-tokens-ga3", "masked_adamw-per-micro-batch", "bf16-autocast"],
)
def test_five_trainer_steps_equal_the_pipelines_loop(tokenizer, tmp_path, smf_kw, cfg_kw):
    cfg = config(loss_weighting=smf_kw.get("loss_weighting", "micro_batch_mean"), **cfg_kw)
    model, background = recovered(tokenizer, **smf_kw)
    start = values(model)
    theirs = twin(model)
    ours = run_loop(model, tokenizer, background, cfg, tmp_path)
    t = trainer(theirs, tokenizer, background, cfg, tmp_path / "hf")
    t.train()
    assert t.state.global_step == 5
    for layer, table in ours.items():
        assert not torch.equal(table, start[layer]), "the tables must have moved"
        assert torch.equal(table, values(theirs)[layer]), layer


def test_only_selected_value_rows_change(tokenizer, tmp_path):
    model, background = recovered(tokenizer)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    t = trainer(model, tokenizer, background, config(), tmp_path)
    chosen: dict[int, set[int]] = {}
    choose = t.sparse.selection.choose

    def spy(counter, trace=None):
        rows = choose(counter, trace)
        for layer, r in rows.items():
            assert len(r) <= 5
            chosen.setdefault(layer, set()).update(r.tolist())
        return rows

    t.sparse.selection.choose = spy
    t.train()
    after = model.state_dict()
    for name, tensor in before.items():
        if not name.endswith("memory.values"):
            assert torch.equal(tensor, after[name]), f"{name} moved"
    for layer in memories(model):
        name = f"model.layers.{layer}.mlp.memory.values"
        moved = set((before[name] != after[name]).any(-1).nonzero().flatten().tolist())
        assert moved and moved <= chosen[layer]


class StopAt(TrainerCallback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_training_stop = True


def test_resumed_trainer_equals_uninterrupted(tokenizer, tmp_path):
    model, background = recovered(tokenizer)
    cut, resumed = twin(model), twin(model)
    cfg = config(checkpoint_every=2)
    trainer(model, tokenizer, background, cfg, tmp_path / "ref").train()
    first = trainer(cut, tokenizer, background, cfg, tmp_path / "cut")
    first.add_callback(StopAt(3))
    first.train()
    checkpoint = tmp_path / "cut" / "checkpoint-2"
    assert (checkpoint / "memory.safetensors").is_file()
    assert not (checkpoint / "model.safetensors").exists()  # the memory only
    second = trainer(resumed, tokenizer, background, cfg, tmp_path / "cut")
    second.train(resume_from_checkpoint=str(checkpoint))
    assert second.state.global_step == 5
    for layer, table in values(model).items():
        assert torch.equal(table, values(resumed)[layer]), layer
