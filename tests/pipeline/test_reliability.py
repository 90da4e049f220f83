"""Ordinary mistakes never cost cached work (issue 11): each case of the issue's table.

Fast cases call the library directly. The `slow` cases run Snakemake on a copy of one small
finished run (built once per session) and assert the error's first line and that no cached
output outside the failing job was deleted or changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from conftest import make_tiny_qwen2

from smf.artifacts import ArtifactError
from smf.data import prepare, sources
from smf.method.background import BackgroundStats
from smf.method.memory import MemoryConfig
from smf.method.provenance import check_background
from smf.method.retrofit import RetrofitConfig, load_memory, retrofit, save_memory
from smf.pipeline import freshness, lock, stages
from smf.pipeline.config_checks import ConfigError, check_config, schema_error
from smf.training.arms import setup_full, setup_smf
from smf.training.checkpoint import Checkpointer, saved_checkpoint
from smf.training.config import RowSelection, TrainConfig
from smf.training.loop import train

REPO = Path(__file__).resolve().parents[2]
TEXTS = [f"Question: what is item {i}?\nAnswer: number {i * 7 % 13}" for i in range(12)]


# --------------------------------------------------------------------------- config (fast)


def merged_config(overlay: dict | None = None) -> dict:
    """config.yaml + demo.yaml (+ overlay), deep-merged and schema-defaulted like Snakemake."""
    from snakemake.utils import update_config, validate

    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    update_config(config, yaml.safe_load((REPO / "config/demo.yaml").read_text()))
    update_config(config, overlay or {})
    validate(config, str(REPO / "config/schema.yaml"))
    return config


@pytest.mark.parametrize(
    ("overlay", "first"),
    [
        ({"probes": {"medmcqa": {"dataset": "wikitext"}}}, "probes.medmcqa.dataset: dataset "),
        ({"probes": {"wikitext": {"dataset": "triviaqa"}}}, "probes.wikitext.dataset: dataset "),
        ({"task": {"dataset": "wikitext"}}, "task.dataset: dataset 'wikitext' has kind 'text'"),
        ({"background": {"dataset": "medmcqa"}}, "background.dataset: dataset 'medmcqa' has"),
        ({"retrofit": {"recovery": {"dataset": "triviaqa"}}}, "retrofit.recovery.dataset: "),
        (
            {"retrofit_variants": {"paper3": {"background": {"dataset": "triviaqa"}}}},
            "retrofit_variants.paper3.background.dataset: dataset 'triviaqa' has kind 'qa'",
        ),
        (
            {"retrofit_variants": {"v": {"background": {"dataset": "oasst"}}}},
            "retrofit_variants.v.background.dataset: 'oasst' is not a key of `data`",
        ),
        ({"base": {"model": "./models/missing"}}, "base.model: local path './models/missing' "),
        ({"base": {"model": "/no/such/model"}}, "base.model: local path '/no/such/model' does"),
        ({"demo": {"out_dir": "../../escape"}}, "demo.out_dir: '../../escape' resolves to "),
        ({"run_arms": ["full", "lorra"]}, "run_arms: ['lorra'] are not keys of `arms`"),
        (
            {"arms": {"smf_kl": {"smf": {"retrofit": "replace"}}}},
            "arms.smf_kl.smf.retrofit: 'replace' is not a key of `retrofit_variants`",
        ),
        (
            {"arms": {"smf_kl": {"smf": {"train_alpha": True}}}},
            "arms.smf_kl.smf.train_alpha: needs optimizer masked_adamw",
        ),
        (
            {
                "retrofit_variants": {"rep": {"mode": "replacement"}},
                "arms": {
                    "smf_kl": {
                        "smf": {"retrofit": "rep", "train_alpha": True, "optimizer": "masked_adamw"}
                    }
                },
            },
            "arms.smf_kl.smf.train_alpha: the replacement retrofit has no alpha",
        ),  # fmt: skip
        (
            {"arms": {"smf_kl": {"smf": {"method": "count", "select_ties": "topk"}}}},
            "arms.smf_kl.smf.select_ties: topk needs method tfidf or kl",
        ),
        (
            {"arms": {"smf_kl": {"train": {"clip": "torch"}}}},  # its optimizer: sparse adam
            "arms.smf_kl.train.clip: torch needs optimizer masked_adamw",
        ),
        (
            {"train": {"clip": "torch"}},  # the profile-wide default reaches the SMF arms too
            "arms.smf_tfidf.train.clip: torch needs optimizer masked_adamw",
        ),
        (
            {"arms": {"full": {"train": {"precision": "paper3_bf16"}}}},
            "arms.full.train.precision: paper3_bf16 is paper 3's sparse stage (kind smf)",
        ),
        (
            {"retrofit": {"recovery": {"train": {"precision": "paper3_bf16"}}}},
            "retrofit.recovery.train.precision: paper3_bf16 is paper 3's sparse stage",
        ),
        (
            {"train": {"precision": "paper3_bf16"}},  # every arm and the recovery inherit it
            "retrofit.recovery.train.precision: paper3_bf16 is paper 3's sparse stage",
        ),
        (
            {"arms": {"smf_kl": {"train": {"order": "hf_trainer", "group_by_length": True}}}},
            "arms.smf_kl.train.order: hf_trainer shuffles texts one by one",
        ),
    ],
)
def test_cross_key_mistakes_name_the_key_first(tmp_path, overlay, first):
    with pytest.raises(ConfigError) as err:
        check_config(merged_config(overlay), tmp_path)
    assert str(err.value).splitlines()[0].startswith(first), err.value


def test_paper3_switches_pass_where_they_apply(tmp_path):
    """The `*_paper3` arms' switches on an SMF arm with masked_adamw, and clip torch on the
    dense arms, are not errors."""
    smf = {"optimizer": "masked_adamw", "select_ties": "topk"}
    train = {"clip": "torch", "precision": "paper3_bf16", "order": "hf_trainer"}
    overlay = {
        "train": {"group_by_length": False},
        "arms": {"smf_kl": {"smf": smf, "train": train}, "full": {"train": {"clip": "torch"}}},
    }
    check_config(merged_config(overlay), tmp_path)


def test_hub_ids_and_existing_local_models_pass(tmp_path):
    (tmp_path / "models/qwen").mkdir(parents=True)
    (tmp_path / "models/tiny.gguf").write_bytes(b"GGUF")
    for model in ["Qwen/Qwen2.5-0.5B-Instruct", "gpt2", "models/qwen", "./models/tiny.gguf"]:
        config = merged_config({"base": {"model": model}, "demo": {"enabled": True}})
        check_config(config, tmp_path)
    with pytest.raises(ConfigError, match="^base.model: local path 'models/nope' does not"):
        check_config(merged_config({"base": {"model": "models/nope"}}), tmp_path)


def test_empty_arms_in_an_overlay_is_an_error(tmp_path):
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("arms: {}\n")
    with pytest.raises(ConfigError, match=r"^arms: .*overlay.yaml sets `arms: \{\}`"):
        check_config(merged_config(), tmp_path, [overlay])
    overlay.write_text("arms:\n  lora: {train: {lr: 0.1}}\n")
    check_config(merged_config(), tmp_path, [overlay])


def test_schema_errors_put_the_key_path_first():
    config = merged_config()
    config["train"]["epochz"] = 3
    assert str(schema_error(config, REPO / "config/schema.yaml")).startswith(
        "train.epochz: unknown key"
    )
    config = merged_config()
    config["arms"]["lora"]["train"]["lr"] = "fast"
    assert str(schema_error(config, REPO / "config/schema.yaml")).startswith(
        "arms.lora.train.lr: 'fast' is not of type 'number'"
    )


# --------------------------------------------------------------------------- artifacts (fast)


def saved_memory(tmp_path: Path, n_keys: int = 8) -> Path:
    model = make_tiny_qwen2()
    mem = MemoryConfig(hidden_size=64, n_keys=n_keys, heads=2, topk=4, key_dim=16)
    retrofit(model, RetrofitConfig(layers=[1, 3], memory=mem))
    path = tmp_path / f"memory{n_keys}.safetensors"
    save_memory(model, path)
    return path


def stats_with_slots(slots: int, layers: tuple[int, ...] = (1, 3)) -> BackgroundStats:
    def zeros() -> dict[int, torch.Tensor]:
        return {layer: torch.zeros(slots, dtype=torch.long) for layer in layers}

    return BackgroundStats(5, zeros(), zeros())


@pytest.mark.parametrize("slots", [256, 16])  # the memory has 8**2 = 64 slots
def test_background_statistics_of_another_memory_size_stop_the_run(tmp_path, slots):
    memory = saved_memory(tmp_path)
    path = tmp_path / "stats.safetensors"
    stats_with_slots(slots).save(path)
    with pytest.raises(ArtifactError) as err:
        check_background(BackgroundStats.load(path), path, memory)
    first = str(err.value).splitlines()[0]
    assert first.startswith(f"{path}: background statistics do not match the memory {memory}")
    assert f"expected slots per layer {{1: 64, 3: 64}}, found {{1: {slots}, 3: {slots}}}" in first
    assert f"rm {path}" in first


def test_background_statistics_of_another_memory_of_the_same_size_stop_the_run(tmp_path):
    memory = saved_memory(tmp_path)
    other = saved_memory(tmp_path / "other", n_keys=8)
    other.write_bytes(other.read_bytes()[:-4] + b"\x01\x02\x03\x04")  # same shape, other values
    stats = stats_with_slots(64)
    from smf.method.provenance import background_provenance

    stats.provenance = background_provenance(tmp_path, other, {})
    path = tmp_path / "stats.safetensors"
    stats.save(path)
    with pytest.raises(ArtifactError, match="were computed from another memory"):
        check_background(BackgroundStats.load(path), path, memory)
    stats.provenance = background_provenance(tmp_path, memory, {})
    stats.save(path)
    check_background(BackgroundStats.load(path), path, memory)  # matching: no error


def test_truncated_memory_names_the_file_and_the_rebuild_command(tmp_path):
    memory = saved_memory(tmp_path)
    memory.write_bytes(memory.read_bytes()[:-100])
    with pytest.raises(ArtifactError) as err:
        load_memory(make_tiny_qwen2(), memory)
    first = str(err.value).splitlines()[0]
    assert first.startswith(f"{memory}: unreadable memory (safetensors: ")
    assert f"`rm {memory}`" in first


# --------------------------------------------------------------------------- data (fast)


@pytest.mark.parametrize(
    ("content", "first"),
    [
        (b'{"text": "a"}\n{"text": "b"}\n{"text": "c', ":3: the last line is truncated or invalid"),
        (b'{"text": "a"}\n{"text": bad}\n{"text": "c"}\n', ":2: invalid JSON (Expecting value"),
        (b"", ": the file is empty (0 bytes)"),
        (b'{"text": "a"}\n{"text": "caf\xe9"}\n', ":2: byte 0xe9 at column 14 is not UTF-8"),
    ],
)
def test_bad_jsonl_names_file_line_and_cause(tmp_path, content, first):
    path = tmp_path / "source.jsonl"
    path.write_bytes(content)
    with pytest.raises(sources.DataError) as err:
        sources.load_source({"path": str(path), "split": "train"})
    assert str(err.value).splitlines()[0].startswith(f"{path}{first}"), err.value


def test_text_source_with_only_blank_rows_fails_at_the_data_stage(tmp_path):
    path = tmp_path / "wikitext_test.jsonl"
    path.write_text('{"text": ""}\n{"text": " \\n"}\n')
    spec = {"name": "wikitext", "kind": "text", "source": {"path": str(path)}, "keep_empty": True}
    with pytest.raises(
        sources.DataError, match="^wikitext: no usable records: all 2 rows are blank"
    ):
        prepare.prepare_dataset(spec)


# --------------------------------------------------------------------------- training (fast)


def holder(work_dir: Path) -> subprocess.Popen:
    """Another process that holds the trainer lock of `work_dir` until killed."""
    code = (
        "import sys, time; from smf.pipeline import lock\n"
        "with lock.exclusive(sys.argv[1]):\n    print('held', flush=True); time.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(work_dir)], stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"held"
    return proc


def test_a_second_trainer_on_the_same_checkpoint_folder_stops(tmp_path):
    work = tmp_path / "checkpoints/runs/smf/seed0"
    proc = holder(work)
    try:
        with pytest.raises(lock.FolderLockedError) as err:
            stages.finetune(
                "smf", {"kind": "smf"}, {}, seed=0, base_dir=tmp_path / "missing",
                task_path="-", header="", out_dir=tmp_path, out_log="-", out_summary="-",
                work_dir=work, device="cpu",
            )  # fmt: skip
        assert str(err.value).startswith(f"{work}: another trainer (PID {proc.pid}) is using")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with lock.exclusive(work):  # the kernel released the dead holder's lock
        pass


def tiny_retrofitted():
    model = make_tiny_qwen2(seed=1)
    mem = MemoryConfig(hidden_size=64, n_keys=8, heads=2, topk=4, key_dim=16)
    return retrofit(model, RetrofitConfig(layers=[1, 3], memory=mem))


class Killed(Exception):
    pass


def kill_at(step: int):
    def on_step(done: int) -> None:
        if done == step:
            raise Killed

    return on_step


@pytest.mark.parametrize("optimizer", ["adamw", "sgd", "adam", "masked_adamw"])
def test_every_optimizer_resumes_with_weights_only_loading(tokenizer, tmp_path, optimizer):
    cfg = TrainConfig(lr=1e-3, epochs=1, micro_batch_size=2, grad_accum=1, warmup_steps=1,
                      checkpoint_every=1, seed=0)  # fmt: skip

    def setup():
        if optimizer == "adamw":
            return (*setup_full(make_tiny_qwen2(seed=1), cfg), None)
        model, opt = setup_smf(tiny_retrofitted(), cfg, optimizer)
        return model, opt, RowSelection(method="count", top_t=4, background=None)

    model, opt, sel = setup()
    with pytest.raises(Killed):
        train(model, tokenizer, TEXTS, cfg, opt, work_dir=tmp_path, fingerprint="f",
              selection=sel, progress=False, on_step=kill_at(3))  # fmt: skip
    model, opt, sel = setup()
    result = train(model, tokenizer, TEXTS, cfg, opt, work_dir=tmp_path, fingerprint="f",
                   selection=sel, progress=False)  # fmt: skip
    assert result.resumed_from == 3


class RunsCode:
    """Unpickling this creates a file: what a crafted state.pt could do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_crafted_checkpoint_cannot_run_code(tmp_path):
    model = make_tiny_qwen2()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    ckpt = Checkpointer(tmp_path, "fp")
    ckpt.save(model, opt, sched, 1, [])
    marker = tmp_path / "code_ran"
    torch.save({"optimizer": RunsCode(marker)}, ckpt.path / "state.pt")
    with pytest.raises(Exception, match="Weights only load failed"):
        ckpt.load(model, opt, sched)
    assert not marker.exists()


def test_a_save_killed_between_its_renames_resumes_from_the_previous_checkpoint(
    tmp_path, monkeypatch
):
    model = make_tiny_qwen2()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    ckpt = Checkpointer(tmp_path, "fp")
    ckpt.save(model, opt, sched, 3, [{"step": 3}])
    renames = []

    def killed_on_second_rename(self, target):
        renames.append(target)
        if len(renames) == 2:
            raise KeyboardInterrupt  # the kill lands after checkpoint -> checkpoint.old
        return real_replace(self, target)

    real_replace = Path.replace
    monkeypatch.setattr(Path, "replace", killed_on_second_rename)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save(model, opt, sched, 6, [{"step": 3}, {"step": 6}])
    monkeypatch.undo()
    assert not ckpt.path.exists()
    assert saved_checkpoint(tmp_path) == tmp_path / "checkpoint.old"
    assert ckpt.load(model, opt, sched) == (3, [{"step": 3}])
    ckpt.save(model, opt, sched, 9, [])
    assert saved_checkpoint(tmp_path) == ckpt.path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]
    ckpt.clear()
    assert saved_checkpoint(tmp_path) is None


# --------------------------------------------------------------------------- snakemake (slow)

SNAKEMAKE = [sys.executable, "-m", "snakemake"]
JOB_ERROR_PREFIXES = ("smf.", "ConfigError", "DataError")


def snakemake(cwd: Path, *args: str, overlay: bool = False) -> subprocess.CompletedProcess:
    """config/config.yaml of the copy is the tiny profile; `overlay` adds overlay.yaml."""
    configs = ["--configfile", "overlay.yaml"] if overlay else []
    cmd = [*SNAKEMAKE, "--cores", "1", *args, *configs]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900)


@pytest.fixture()
def run(finished, tmp_path) -> Path:
    """A copy of the finished run for one case (copytree keeps mtimes: Snakemake sees it done)."""
    return shutil.copytree(finished, tmp_path / "run", symlinks=True)


def snapshot(root: Path) -> dict[str, tuple[str, int]]:
    """Hash and mtime of every cached output (results/, logs/), by relative path."""
    out = {}
    for top in ("results", "logs"):
        for path in sorted((root / top).rglob("*")):
            if path.is_file():
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                out[str(path.relative_to(root))] = (digest, path.stat().st_mtime_ns)
    return out


def changed(before: dict, after: dict) -> set[str]:
    return {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}


def error_line(proc: subprocess.CompletedProcess) -> str:
    """The first line of the error: after Snakemake's 'XError in file …:' header, or the
    exception line a failed job's log shows (show-failed-logs)."""
    lines = (proc.stdout + proc.stderr).splitlines()
    for i, line in enumerate(lines):
        if line.startswith("ConfigError in file"):
            return lines[i + 1]
    for line in lines:
        if line.startswith(JOB_ERROR_PREFIXES) and "Error: " in line:
            return line.split("Error: ", 1)[1]
    raise AssertionError("no error found:\n" + "\n".join(lines[-60:]))


CONFIG_CASES = {
    "probe_wrong_kind": ("probes:\n  triviaqa: {dataset: wikitext}\n",
                         "probes.triviaqa.dataset: dataset 'wikitext' has kind 'text'"),
    "task_wrong_kind": ("task: {dataset: triviaqa}\n",
                        "task.dataset: dataset 'triviaqa' has kind 'qa'"),
    "background_wrong_kind": ("background: {dataset: medmcqa}\n",
                              "background.dataset: dataset 'medmcqa' has kind"),
    "missing_local_model": ("base: {model: ./models/qwen-local}\n",
                            "base.model: local path './models/qwen-local' does not exist"),
    "out_dir_escapes": ("demo: {out_dir: ../../escape}\n",
                        "demo.out_dir: '../../escape' resolves to "),
    "empty_arms": ("arms: {}\n", "arms: "),
    "typo_already_caught": ("train: {epochz: 2}\n", "train.epochz: unknown key"),
}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_config_mistakes_stop_before_any_job_and_keep_the_cache(run, case):
    overlay, first = CONFIG_CASES[case]
    (run / "overlay.yaml").write_text(overlay)
    before = snapshot(run)
    proc = snakemake(run, "all", overlay=True)
    assert proc.returncode != 0
    assert error_line(proc).startswith(first), error_line(proc)
    if case == "empty_arms":
        assert "overlay.yaml sets `arms: {}`, which selects no arm" in error_line(proc)
    assert changed(before, snapshot(run)) == set()
    assert not (run.parent.parent / "escape").exists()


def job_failure(run: Path, target: str = "all") -> tuple[str, set[str]]:
    before = snapshot(run)
    proc = snakemake(run, target)
    assert proc.returncode != 0, proc.stdout[-2000:]
    return error_line(proc), changed(before, snapshot(run))


def only_job_outputs(diff: set[str], *prefixes: str) -> None:
    outside = {p for p in diff if not p.startswith(prefixes)}
    assert outside == set(), outside


@pytest.mark.slow
def test_statistics_of_a_larger_memory_stop_the_smf_run(run):
    stats = run / "results/background/stats.safetensors"
    stats_with_slots(256, layers=(1,)).save(stats)  # of a 16**2-slot memory; this one has 8**2
    line, diff = job_failure(run)
    assert line.startswith(
        "results/background/stats.safetensors: background statistics do not match the memory "
        "results/models/retrofit/memory.safetensors: expected slots per layer {1: 64}, "
        "found {1: 256}"
    ), line
    assert "snakemake" in line and "rm results/background/stats.safetensors" in line
    only_job_outputs(
        diff,
        "results/medmcqa/runs/smf_tfidf/seed0/",
        "results/checkpoints/medmcqa/runs/smf_tfidf/seed0/",  # the trainer's lock file
        "logs/medmcqa/finetune/smf_tfidf/seed0",
        "results/medmcqa/benchmarks/finetune/smf_tfidf/seed0",
    )


@pytest.mark.slow
def test_truncated_memory_names_the_file_and_how_to_rebuild(run):
    memory = run / "results/models/retrofit/memory.safetensors"
    stat = memory.stat()
    memory.write_bytes(memory.read_bytes()[:-64])  # a copy cut short, with its old mtime
    os.utime(memory, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    shutil.rmtree(run / "results/medmcqa/eval/retrofit")  # so that a job reads the memory
    line, diff = job_failure(run, "results/medmcqa/eval/retrofit/medmcqa.json")
    assert line.startswith(
        "results/models/retrofit/memory.safetensors: unreadable memory (safetensors: "
    ), line
    assert "`rm results/models/retrofit/memory.safetensors`" in line
    only_job_outputs(
        diff,
        "results/medmcqa/eval/retrofit/",
        "logs/medmcqa/eval/retrofit",
        "results/medmcqa/benchmarks/eval/retrofit",
    )


@pytest.mark.slow
def test_truncated_source_line_names_file_and_line(run):
    source = run / "results/demo/raw/triviaqa_validation.jsonl"
    lines = source.read_bytes().splitlines(keepends=True)
    source.write_bytes(b"".join(lines[:-1]) + lines[-1][:20])
    line, diff = job_failure(run)
    assert line.startswith(
        f"results/demo/raw/triviaqa_validation.jsonl:{len(lines)}: the last line is truncated"
    ), line
    only_job_outputs(diff, "results/data/triviaqa", "logs/data/triviaqa")


@pytest.mark.slow
def test_wikitext_with_only_blank_rows_fails_at_the_data_stage(run):
    (run / "results/demo/raw/wikitext_test.jsonl").write_text('{"text": ""}\n' * 5)
    line, diff = job_failure(run)
    assert line.startswith("wikitext: no usable records: all 5 rows are blank"), line
    only_job_outputs(diff, "results/data/wikitext", "logs/data/wikitext")
    assert json.loads((run / "results/medmcqa/eval/base/wikitext.json").read_text())["n"] > 0


@pytest.mark.slow
def test_rerun_after_a_killed_snakemake_does_not_start_a_second_trainer(run):
    """Kill Snakemake (not its job) mid-training; the immediate rerun's trainer stops."""
    # So many epochs that the orphan cannot finish before the rerun looks (CI flaked at 400).
    (run / "overlay.yaml").write_text("train: {epochs: 1000000, checkpoint_every: 2}\n")
    target = ["results/medmcqa/runs/smf_tfidf/seed0/summary.json", "--cores", "1"]
    work = run / "results/checkpoints/medmcqa/runs/smf_tfidf/seed0"
    first = subprocess.Popen(
        [*SNAKEMAKE, *target, "--allowed-rules", "finetune_smf", "--configfile", "overlay.yaml"],
        cwd=run, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.time() + 600
        while not (work / "checkpoint/meta.json").exists():
            assert first.poll() is None, "finetune ended before its first checkpoint"
            assert time.time() < deadline, "no checkpoint appeared"
            time.sleep(0.2)
        first.send_signal(signal.SIGKILL)  # Snakemake dies; its training job runs on
        first.wait()
        orphan = int((work / lock.LOCK_NAME).read_text())
        os.kill(orphan, 0)  # still alive
        assert snakemake(run, "--unlock").returncode == 0
        proc = snakemake(run, *target, "--allowed-rules", "finetune_smf", overlay=True)
        assert proc.returncode != 0
        line = error_line(proc)
        assert line.startswith(
            f"results/checkpoints/medmcqa/runs/smf_tfidf/seed0: another trainer (PID {orphan}) is "
            "using this checkpoint folder"
        ), line
        os.kill(orphan, 0)  # the orphan was left alone
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(first.pid, signal.SIGKILL)  # the orphan is in the first run's session


# --------------------------------------------------------------------------- issue 23 (fast)


@pytest.mark.parametrize(
    ("overlay", "first"),
    [
        (
            {"arms": {"full": {"lr_sweep": [1.0e-3, 1.0000001e-3]}}},
            "arms.full.lr_sweep: rates 0.001 and 0.0010000001 both map to the arm name "
            "'full_lr0.001'",
        ),
        ({"arms": {"lora": {"train": {"lr": float("nan")}}}}, "arms.lora.train.lr: nan is not"),
        ({"arms": {"full": {"lr_sweep": [float("inf")]}}}, "arms.full.lr_sweep[0]: inf is not"),
        (
            {"experiments": {"facts": {"arms": {"lora": {"train": {"lr": float("inf")}}}}}},
            "experiments.facts.arms.lora.train.lr: inf is not a finite learning rate",
        ),
    ],
)
def test_bad_learning_rates_stop_before_any_job(tmp_path, overlay, first):
    with pytest.raises(ConfigError) as err:
        check_config(merged_config(overlay), tmp_path)
    assert str(err.value).startswith(first), err.value


def test_a_yaml_1_1_exponent_without_a_dot_is_explained():
    config = merged_config()
    config["arms"]["lora"]["train"]["lr"] = "1e-3"  # what PyYAML makes of `lr: 1e-3`
    message = str(schema_error(config, REPO / "config/schema.yaml"))
    assert message.startswith("arms.lora.train.lr: '1e-3' is not of type 'number' (YAML 1.1")
    assert "1.0e-3" in message


@pytest.mark.parametrize("name", ["all", "tradeoff", "lora", "base_model"])
def test_an_experiment_named_like_a_rule_or_target_names_the_key(tmp_path, name):
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    overlay = {"experiments": {name: config["experiments"]["facts"]}, "run_experiments": [name]}
    (tmp_path / "overlay.yaml").write_text(yaml.safe_dump(overlay))
    proc = subprocess.run(
        [*SNAKEMAKE, "-n", "--cores", "1", "--configfile", str(tmp_path / "overlay.yaml")],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode != 0
    assert error_line(proc).startswith(f"experiments.{name}: the experiment name {name!r} is "), (
        proc.stderr[-2000:]
    )


@pytest.mark.parametrize(
    ("name", "taken"),
    [("finetune_smf", "the name of rule finetune_smf"), ("smf_kl", "the target of arm")],
)
def test_a_main_experiment_named_like_a_rule_or_target_names_the_key(tmp_path, name, taken):
    (tmp_path / "overlay.yaml").write_text(f"main_experiment: {name}\n")
    proc = subprocess.run(
        [*SNAKEMAKE, "-n", "--cores", "1", "--configfile", str(tmp_path / "overlay.yaml")],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode != 0
    line = error_line(proc)
    assert line.startswith(f"main_experiment: the experiment name {name!r} is already {taken}")


def test_missing_run_records_and_evals_are_named_before_the_dag(tmp_path):
    run = tmp_path / "runs/lora/seed0"
    (run / "adapter").mkdir(parents=True)
    (run / "train_log.jsonl").write_text("{}\n")
    records = {str(run / "adapter"): [str(run / "train_log.jsonl"), str(run / "summary.json")]}
    [message] = freshness.run_outputs_gaps(records)
    assert message.startswith(f"{run / 'summary.json'} missing while {run / 'adapter'} is cached")
    assert "RETRAINS" in message
    (run / "summary.json").write_text("{}")
    assert freshness.run_outputs_gaps(records) == []
    evals = tmp_path / "eval/lora-seed0"
    evals.mkdir(parents=True)
    (evals / "medmcqa.json").write_text('{"value": 1}\n')
    (evals / "triviaqa.json").write_text('{"value": ')  # truncated
    paths = [str(evals / f"{p}.json") for p in ("medmcqa", "triviaqa", "wikitext")]
    missing, truncated = freshness.eval_gaps(paths)
    assert missing.startswith(f"{evals / 'wikitext.json'} missing: the evaluation that writes")
    assert truncated.startswith(f"{evals / 'triviaqa.json'}: truncated")
    assert f"`rm {evals / 'triviaqa.json'}`" in truncated


# --------------------------------------------------------------------------- issue 23 (slow)

RUN = "results/medmcqa/runs/smf_tfidf/seed0"
WORK = "results/checkpoints/medmcqa/runs/smf_tfidf/seed0"
# a changed arm config with enough steps for a kill between two checkpoints
RETRAIN = "arms:\n  smf_tfidf: {train: {lr: 0.2, epochs: 20, checkpoint_every: 2}}\n"


def planned(proc: subprocess.CompletedProcess) -> dict[str, int]:
    """Jobs of a dry run ('Job stats' table); {} when there is nothing to be done."""
    out = proc.stdout + proc.stderr
    if "Job stats:" not in out:
        assert "Nothing to be done" in out, out[-3000:]
        return {}
    block = out.split("Job stats:")[1].split("\n\n")[0]
    rows = re.findall(r"^(\w+)\s+(\d+)$", block, flags=re.M)
    return {name: int(n) for name, n in rows if name != "total"}


@pytest.mark.slow
@pytest.mark.parametrize("target", ["all", "results/medmcqa/tables/main.csv"])
def test_a_table_never_reports_a_run_of_an_old_config(run, target):
    """A failed retrain leaves the old eval JSONs; the table must still be out of date."""
    (run / "overlay.yaml").write_text(RETRAIN)
    for name in ("memory.safetensors", "train_log.jsonl", "summary.json"):
        (run / RUN / name).unlink()  # what Snakemake deletes when the finetune job fails
    jobs = planned(snakemake(run, target, "-n", overlay=True))
    assert {"finetune_smf", "evaluate_medmcqa", "tables"} <= set(jobs), jobs
    assert jobs["finetune_smf"] == 1 and jobs["evaluate_medmcqa"] == 1, jobs  # that arm only


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "rule", "retrains"),
    [
        (f"{RUN}/train_log.jsonl", "finetune_smf", True),
        (f"{RUN}/summary.json", "finetune_smf", True),
        ("results/medmcqa/eval/smf_tfidf-seed0/triviaqa.json", "evaluate_medmcqa", False),
    ],
)
def test_a_deleted_intermediate_is_planned_again_and_a_retrain_is_announced(
    run, name, rule, retrains
):
    (run / name).unlink()
    proc = snakemake(run, "all", "-n")
    assert rule in planned(proc)
    warning = f"WARNING: {name} missing"
    assert warning in proc.stderr, proc.stderr[-3000:]
    assert ("RETRAINS" in proc.stderr) == retrains


def wait_for_checkpoint(work: Path, after: int, job: subprocess.Popen) -> int:
    """The trainer's PID once a checkpoint past step `after` is on disk."""
    deadline = time.time() + 600
    while True:
        meta = work / "checkpoint/meta.json"
        with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
            if json.loads(meta.read_text())["step"] > after:
                return int((work / lock.LOCK_NAME).read_text())
        assert job.poll() is None, "the finetune job ended before a checkpoint"
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.05)


@pytest.mark.slow
def test_a_killed_retrain_resumes_and_reports_what_an_uninterrupted_run_does(finished, tmp_path):
    """Kill the finetune job itself (SIGTERM, then SIGKILL on the rerun) after a checkpoint:
    each rerun of the same command resumes, and the results equal an uninterrupted run's."""
    clean = shutil.copytree(finished, tmp_path / "clean", symlinks=True)
    (clean / "overlay.yaml").write_text(RETRAIN)
    assert snakemake(clean, "all", overlay=True).returncode == 0
    run = shutil.copytree(finished, tmp_path / "run", symlinks=True)
    (run / "overlay.yaml").write_text(RETRAIN)
    resumed_from = 0
    for sig in (signal.SIGTERM, signal.SIGKILL):
        job = subprocess.Popen(
            [*SNAKEMAKE, "all", "--cores", "1", "--configfile", "overlay.yaml"],
            cwd=run, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            os.kill(wait_for_checkpoint(run / WORK, resumed_from, job), sig)
            assert job.wait(timeout=600) != 0
        finally:
            with contextlib.suppress(ProcessLookupError):
                job.kill()
        resumed_from = json.loads((saved_checkpoint(run / WORK) / "meta.json").read_text())["step"]
        assert resumed_from > 0
    proc = snakemake(run, "all", overlay=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((run / RUN / "summary.json").read_text())
    assert summary["resumed_from_step"] == resumed_from
    for rel in ["results/medmcqa/tables/main.csv", *(
        f"results/medmcqa/eval/smf_tfidf-seed0/{p}.json"
        for p in ("medmcqa", "triviaqa", "wikitext")
    )]:  # fmt: skip
        assert (run / rel).read_bytes() == (clean / rel).read_bytes(), rel
    # the run reported is the new config's (the tiny model's scores barely move with it)
    old = json.loads((finished / RUN / "summary.json").read_text())
    assert (summary["train"]["lr"], old["train"]["lr"]) == (0.2, 0.3)
    assert summary["steps"] == 20 * old["steps"]


def test_a_truncated_gguf_stops_before_any_job(smollm2_gguf, tmp_path):
    from smf.pipeline.config_checks import base_model_layers

    cut = tmp_path / "cut.gguf"
    cut.write_bytes(smollm2_gguf.read_bytes()[: 2 * 1024 * 1024])
    assert base_model_layers(merged_config({"base": {"model": str(smollm2_gguf)}})) == 30
    with pytest.raises(ConfigError) as err:
        base_model_layers(merged_config({"base": {"model": str(cut)}}))
    assert str(err.value).startswith(
        f"base.model: {cut}: truncated: the file has 2097152 bytes, but its header places tensor "
    ), err.value


def test_the_paper_profile_in_a_demo_folder_stops_before_any_job(tmp_path):
    (tmp_path / "results/demo/raw").mkdir(parents=True)
    with pytest.raises(ConfigError, match=r"^demo.enabled: false \(the paper profile\), but "):
        paper = {"demo": {"enabled": False}, "base": {"model": "Qwen/Qwen2.5-0.5B-Instruct"}}
        check_config(merged_config(paper), tmp_path)
    check_config(merged_config(), tmp_path)  # the demo profile there is fine


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("question", "", "field 'question' is empty"),
        ("ope", "a fifth", "field 'ope' is a fifth option; a MedMCQA record has exactly 4"),
    ],
)
def test_medmcqa_record_errors_name_file_and_line(tmp_path, column, value, message):
    rows = [
        {"id": f"q{i}", "question": f"Q{i}?", "opa": "a", "opb": "b", "opc": "c", "opd": "d",
         "cop": i, "choice_type": "single", "exp": "", "subject_name": "s"}
        for i in range(4)
    ]  # fmt: skip
    rows[2][column] = value
    path = tmp_path / "medmcqa.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    spec = {"name": "medmcqa", "kind": "multiple_choice", "source": {"path": str(path)}}
    with pytest.raises(prepare.DataError) as err:
        prepare.prepare_dataset(spec)
    assert (
        str(err.value) == f"{path}:3: {message} (opa, opb, opc, opd)"
        if column == "ope"
        else (str(err.value) == f"{path}:3: {message}")
    ), err.value


def test_duplicate_medmcqa_options_are_counted_and_named(tmp_path, capsys):
    rows = [
        {"id": f"q{i}", "question": f"Q{i}?", "opa": "a", "opb": "b", "opc": "c", "opd": "d",
         "cop": i, "choice_type": "single", "exp": "", "subject_name": "s"}
        for i in range(4)
    ]  # fmt: skip
    rows[1]["opd"] = "B "
    path = tmp_path / "medmcqa.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    spec = {"name": "medmcqa", "kind": "multiple_choice", "source": {"path": str(path)}}
    records, stats = prepare.prepare_dataset(spec)
    assert len(records) == 4 and stats["rows_with_duplicate_options"] == 1
    assert "medmcqa: WARNING: 1 records repeat an option: ['q1']" in capsys.readouterr().out


@pytest.mark.slow
def test_a_bad_eval_record_keeps_the_cached_data_file(run):
    source = run / "results/demo/raw/medmcqa_validation.jsonl"
    lines = source.read_text().splitlines()
    record = json.loads(lines[2])
    record["question"] = ""
    lines[2] = json.dumps(record)
    source.write_text("\n".join(lines) + "\n")
    cached = (run / "results/data/medmcqa.jsonl").read_bytes()
    line, diff = job_failure(run)
    assert line == "results/demo/raw/medmcqa_validation.jsonl:3: field 'question' is empty", line
    assert (run / "results/data/medmcqa.jsonl").read_bytes() == cached  # put back, not deleted
    only_job_outputs(diff, "results/data/medmcqa", "logs/data/medmcqa")


def test_a_cluster_profile_without_its_commands_names_them():
    from smf.pipeline.config_checks import check_executor_commands

    with pytest.raises(ConfigError, match=r"^executor: the slurm executor .* needs `sbatch`, "):
        check_executor_commands("slurm", lambda command: None)
    only_squeue = {"sbatch": "/bin/sbatch", "squeue": "/bin/squeue"}.get
    check_executor_commands("slurm", only_squeue)  # squeue polls where sacct is missing
    with pytest.raises(ConfigError, match="needs `sacct or squeue` on PATH"):
        check_executor_commands("slurm", {"sbatch": "/bin/sbatch"}.get)
    check_executor_commands(None, lambda command: None)  # local runs need nothing


@pytest.mark.slow
def test_the_slurm_profile_without_slurm_stops_before_deleting_anything(run):
    pytest.importorskip("snakemake_executor_plugin_slurm")
    if shutil.which("sbatch"):
        pytest.skip("sbatch is installed here")
    before = snapshot(run)
    proc = snakemake(run, "--profile", "profiles/slurm", "results/medmcqa/eval/base/medmcqa.json",
                     "-R", "evaluate_medmcqa")  # fmt: skip
    assert proc.returncode != 0
    assert error_line(proc).startswith(
        "executor: the slurm executor (--profile profiles/slurm) needs `sbatch`, `sacct or "
        "squeue` on PATH, not found on this machine; no job was submitted"
    ), error_line(proc)
    assert changed(before, snapshot(run)) == set()


def test_a_truncated_eval_json_says_how_to_rebuild_it(tmp_path):
    from smf.report.paper_tables import load_eval_results

    path = tmp_path / "medmcqa.json"
    path.write_text('{"arm": "base", "value": 0.')
    with pytest.raises(ValueError) as err:
        load_eval_results([path])
    assert str(err.value).startswith(f"{path}: not valid JSON (")
    assert f"Rebuild it: `rm {path}` and run the same snakemake command again" in str(err.value)


@pytest.mark.slow
def test_a_failed_slurm_submission_never_shows_an_older_log(run, tmp_path):
    """sbatch (and every Slurm command) present but failing: the failure shows no log of an
    earlier run (a cluster job's log is deleted only on its node, after a submission)."""
    pytest.importorskip("snakemake_executor_plugin_slurm")
    fake = tmp_path / "bin"
    fake.mkdir()
    for command in ("sbatch", "squeue", "sacct", "sinfo", "scontrol"):
        (fake / command).write_text(f"#!/bin/sh\necho '{command}: error: Invalid account' >&2\n"
                                    "exit 1\n")  # fmt: skip
        (fake / command).chmod(0o755)
    (run / "logs/medmcqa/eval/base.log").write_text("OLD LOG FROM AN EARLIER RUN\n")
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"}
    cmd = [*SNAKEMAKE, "--profile", "profiles/slurm", "results/medmcqa/eval/base/medmcqa.json",
           "-R", "evaluate_medmcqa"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=run, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0
    assert "Invalid account" in proc.stdout + proc.stderr  # the real cause is shown
    assert "OLD LOG FROM AN EARLIER RUN" not in proc.stdout + proc.stderr


@pytest.mark.slow
def test_a_changed_arm_reruns_that_arm_only(run):
    """The fingerprints leave the other models' evaluations (base, retrofit) current."""
    (run / "overlay.yaml").write_text("arms:\n  smf_tfidf: {train: {lr: 0.2}}\n")
    jobs = planned(snakemake(run, "all", "-n", overlay=True))
    assert jobs == {"finetune_smf": 1, "evaluate_medmcqa": 1, "tables": 1,
                    "figures": 1, "tradeoff": 1, "all": 1}  # fmt: skip
