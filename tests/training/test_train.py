"""Training loop: resume after a kill equals an uninterrupted run; NaN stops with the step."""

import pytest
import torch
from conftest import make_tiny_qwen2

from smf.training.arms import setup_full, setup_lora
from smf.training.config import TrainConfig
from smf.training.loop import checkpoint_due, train

TEXTS = [f"Question: what is item {i}?\nAnswer: number {i * 7 % 13}" for i in range(20)]


class Killed(Exception):
    pass


def config(**kw) -> TrainConfig:
    base = dict(
        lr=1e-3,
        epochs=2,
        micro_batch_size=2,
        grad_accum=2,
        warmup_steps=2,
        checkpoint_every=2,
        seed=3,
    )
    base.update(kw)
    return TrainConfig(**base)


def run(tokenizer, work_dir, kill_at=None, arm="lora", **cfg_kw):
    model = make_tiny_qwen2(seed=1)
    cfg = config(**cfg_kw)
    if arm == "lora":
        model, opt = setup_lora(
            model,
            cfg,
            {"r": 4, "lora_alpha": 8, "lora_dropout": 0.1, "target_modules": ["q_proj", "v_proj"]},
        )
    else:
        model, opt = setup_full(model, cfg)

    def on_step(step):
        if kill_at is not None and step == kill_at:
            raise Killed

    result = train(
        model,
        tokenizer,
        TEXTS,
        cfg,
        opt,
        work_dir=work_dir,
        fingerprint="f",
        progress=False,
        on_step=on_step,
    )
    return model, result


@pytest.mark.parametrize(
    ("arm", "kw"),
    [("lora", {}), ("full", {}), ("lora", {"group_by_length": True, "log_every": 3})],
    ids=["lora", "full", "lora-grouped-log3"],
)
def test_resumed_run_equals_uninterrupted_run(tokenizer, tmp_path, arm, kw):
    ref_model, ref = run(tokenizer, tmp_path / "ref", arm=arm, **kw)
    with pytest.raises(Killed):
        run(tokenizer, tmp_path / "cut", kill_at=5, arm=arm, **kw)
    model, resumed = run(tokenizer, tmp_path / "cut", arm=arm, **kw)
    assert resumed.resumed_from == 4  # last checkpoint before the kill
    assert [r["loss"] for r in resumed.log] == [r["loss"] for r in ref.log]
    for (name, a), b in zip(
        ref_model.state_dict().items(), model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name


def test_changed_fingerprint_never_resumes(tokenizer, tmp_path):
    with pytest.raises(Killed):
        run(tokenizer, tmp_path, kill_at=3)
    model = make_tiny_qwen2(seed=1)
    cfg = config()
    model, opt = setup_full(model, cfg)
    result = train(
        model, tokenizer, TEXTS, cfg, opt, work_dir=tmp_path, fingerprint="other", progress=False
    )
    assert result.resumed_from == 0


def test_non_finite_loss_names_the_step(tokenizer, tmp_path):
    model = make_tiny_qwen2(seed=1)
    cfg = config(lr=1e30, warmup_steps=0, schedule="constant")
    model, opt = setup_full(model, cfg)
    with pytest.raises(FloatingPointError, match=r"at step \d+"):
        train(model, tokenizer, TEXTS, cfg, opt, work_dir=tmp_path, fingerprint="f", progress=False)


def test_checkpoints_by_steps_or_by_wall_time():
    by_steps = config(checkpoint_every=4, checkpoint_minutes=0)
    assert [d for d in range(1, 10) if checkpoint_due(by_steps, d, 1e9)] == [4, 8]
    by_time = config(checkpoint_every=0, checkpoint_minutes=15)
    assert not checkpoint_due(by_time, 3, 899.0)
    assert checkpoint_due(by_time, 3, 900.0)
    assert not checkpoint_due(config(checkpoint_every=0, checkpoint_minutes=0), 4, 1e9)


def test_wall_time_checkpoint_resumes(tokenizer, tmp_path):
    model = make_tiny_qwen2(seed=1)
    cfg = config(checkpoint_every=0, checkpoint_minutes=1e-9)  # due after every step
    model, opt = setup_full(model, cfg)

    def kill(step):
        if step == 3:
            raise Killed

    with pytest.raises(Killed):
        train(model, tokenizer, TEXTS, cfg, opt, work_dir=tmp_path, fingerprint="t",
              progress=False, on_step=kill)  # fmt: skip
    model = make_tiny_qwen2(seed=1)
    model, opt = setup_full(model, cfg)
    result = train(
        model, tokenizer, TEXTS, cfg, opt, work_dir=tmp_path, fingerprint="t", progress=False
    )
    assert result.resumed_from == 3


def test_log_every_defers_the_sync_but_logs_every_step_the_same(tokenizer, tmp_path):
    _, every = run(tokenizer, tmp_path / "a", log_every=1)
    _, later = run(tokenizer, tmp_path / "b", log_every=4)
    assert len(later.log) == len(every.log) == 10
    assert later.log == every.log
