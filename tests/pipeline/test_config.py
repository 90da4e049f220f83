"""Bad configs fail before any job starts, naming the key (snakemake dry runs, seconds)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import copy_workflow

BAD = {
    "typo": ("arms:\n  smf_kl: {smf: {topt: 3}}\n", "topt"),
    "wrong_type": ("seeds: zero\n", "seeds"),
    "unknown_arm_kind": ("arms:\n  adapter: {kind: prefix, train: {lr: 1.0}}\n", "prefix"),
    "layer_outside_model": ("retrofit: {layers: [1, 9]}\n", "retrofit.layers: [9]"),
    "top_t_too_large": ("arms:\n  smf_kl: {smf: {top_t: 20000}}\n", "arms.smf_kl.smf.top_t"),
    "sweep_rate_twice": ("arms:\n  lora: {lr_sweep: [0.003, 0.003]}\n", "arms.lora.lr_sweep"),
    "experiment_learning_probe": (
        "experiments:\n  facts: {learning_probe: nope}\n",
        "experiments.facts.learning_probe",
    ),
    "experiment_forgetting_probe": (
        "experiments:\n  facts: {forgetting_probes: [wikitxt]}\n",
        "experiments.facts.forgetting_probes",
    ),
    "experiment_probe_shadows_a_shared_one": (
        "experiments:\n  facts: {probes: {wikitext: {dataset: facts_eval, kind: qa}}}\n",
        "experiments.facts.probes.wikitext",
    ),
    "experiment_extra_learning_probe_is_the_learning_probe": (
        "experiments:\n  facts: {extra_learning_probes: [facts]}\n",
        "experiments.facts.extra_learning_probes",
    ),
    "experiment_extra_learning_probe_is_not_its_own": (
        "experiments:\n  facts: {extra_learning_probes: [wikitext]}\n",
        "experiments.facts.extra_learning_probes",
    ),
    "experiment_top_t": (
        "experiments:\n  facts: {arms: {smf_kl: {smf: {top_t: 20000}}}}\n",
        "experiments.facts.arms.smf_kl.smf.top_t",
    ),
    "probe_without_dataset": ("probes:\n  medmcqa: {dataset: nope}\n", "probes.medmcqa.dataset"),
    "variant_background_dataset": (
        "retrofit_variants:\n  paper3: {background: {dataset: oasst}}\n",
        "retrofit_variants.paper3.background.dataset: 'oasst' is not a key of `data`",
    ),
    "variant_background_kind": (
        "retrofit_variants:\n  paper3: {background: {dataset: triviaqa}}\n",
        "retrofit_variants.paper3.background.dataset: dataset 'triviaqa' has kind 'qa'",
    ),
    "variant_background_key": (
        "retrofit_variants:\n  paper3: {background: {shuffle: run}}\n",
        "retrofit_variants.paper3.background.shuffle",
    ),
    "background_shuffle_seed": ("background: {shuffle_seed: 3}\n", "background.shuffle_seed"),
}


@pytest.fixture(scope="module")
def workflow(tmp_path_factory) -> Path:
    return copy_workflow(tmp_path_factory.mktemp("workflow"))


def snakemake(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-n", "--cores", "1", *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)


def dry_run(cwd: Path, overlay: str) -> subprocess.CompletedProcess:
    (cwd / "overlay.yaml").write_text(overlay)
    return snakemake(cwd, "--configfile", "config/demo.yaml", "overlay.yaml")


def job_of(out: str, rule: str, wildcards: str) -> str:
    """A dry run's job of `rule` with these wildcards (Snakemake prints jobs in no fixed order)."""
    jobs = [chunk.split("\n\n")[0] for chunk in out.split(f"rule {rule}:")[1:]]
    jobs = [job for job in jobs if f"wildcards: {wildcards}\n" in job]
    assert len(jobs) == 1, (rule, wildcards, len(jobs))
    return jobs[0]


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_config_fails_before_any_job_naming_the_key(workflow, case):
    overlay, needle = BAD[case]
    proc = dry_run(workflow, overlay)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert needle in out, out[-2000:]
    assert "Building DAG of jobs" not in out


def test_demo_and_paper_profiles_build_their_dags(workflow):
    proc = dry_run(workflow, "{}\n")
    assert proc.returncode == 0, proc.stderr[-2000:]
    paper = snakemake(workflow, "--quiet", "rules")
    assert paper.returncode == 0, paper.stderr[-2000:]
    # 10 arms x 3 seeds: full, LoRA, our 2 SMF arms and paper 3's 6 (additive, replacement,
    # additive+S, each with TF-IDF and KL); seeding per_run: 3 retrofits (ours, and paper 3's
    # additive and replacement variants) with their backgrounds, a task shuffle per seed and
    # the paper-3 variants' background shuffle per seed; base + 9 retrofits + 30 model
    # evaluations; 5 shared datasets
    # paper 1's fact experiment (results/facts/): 4 arms x 3 learning rates x 3 seeds, its
    # probes (held-out and taught form) on base and the 3 main retrofits; 3 more datasets (its
    # training texts and both question files); its fronts on each of its two learning probes
    # (one finetune rule per arm kind and one set of report rules serve both experiments)
    for rule, n in [("finetune_smf", 24 + 18), ("finetune_lora", 3 + 9), ("finetune_full", 3 + 9),
                    ("retrofit", 9), ("background", 9), ("evaluate_medmcqa", 40),
                    ("prepare_data", 8), ("prepare_task_shuffle", 6), ("fact_task", 1),
                    ("evaluate_facts", 36), ("evaluate_facts_reference", 4), ("tables", 2),
                    ("figures", 2), ("tradeoff", 2), ("tradeoff_extra", 1)]:  # fmt: skip
        assert f"{rule} {n}" in " ".join(paper.stdout.split()), rule


def test_per_run_seeding_gives_each_seed_its_own_chain(workflow):
    """seeding: per_run (paper 3's code): seed 1's SMF run reads seed 1's task shuffle, retrofit
    and background statistics; shared (the demo's default) reads the one shared chain."""
    target = "results/medmcqa/runs/smf_kl/seed1/summary.json"
    per_run = dry_run(workflow, "seeding: per_run\nseeds: [0, 1]\n")
    assert per_run.returncode == 0, per_run.stderr[-2000:]
    proc = snakemake(workflow, target, "--configfile", "config/demo.yaml", "overlay.yaml")
    job = proc.stdout.split("rule finetune_smf:")[1].split("\n\n")[0]
    for path in ("results/data/medmcqa_train.seed1.jsonl",
                 "results/models/retrofit/seed1/memory.safetensors",
                 "results/background/seed1/stats.safetensors"):  # fmt: skip
        assert path in job, job
    shared = snakemake(
        workflow, target, "--configfile", "config/demo.yaml", "config/demo_seeds.yaml"
    )
    job = shared.stdout.split("rule finetune_smf:")[1].split("\n\n")[0]
    assert "results/models/retrofit/memory.safetensors" in job and "seed1/stats" not in job, job


def test_paper3_arms_start_from_paper3s_retrofit_and_seeded_background(workflow):
    """Paper profile: a `*_paper3` arm of seed 1 starts from the paper-3 retrofit variant and
    selects against its own background, 2,000 OASST1 replies shuffled by seed 1; our arms keep
    the main retrofit and its WikiText background. Demo profile (seeding shared): a variant's
    seeded background is shuffled by retrofit.seed."""
    targets = [f"results/medmcqa/runs/{arm}/seed1/summary.json" for arm in ("smf_kl_paper3",
               "smf_tfidf_replacement_paper3", "smf_kl")]  # fmt: skip
    proc = snakemake(workflow, *targets)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for arm, variant in [
        ("smf_kl_paper3", "_paper3"),
        ("smf_tfidf_replacement_paper3", "_replacement"),
        ("smf_kl", ""),
    ]:
        job = job_of(proc.stdout, "finetune_smf", f"experiment=medmcqa, arm={arm}, seed=1")
        for path in (f"results/models/retrofit{variant}/seed1/memory.safetensors",
                     f"results/background{variant}/seed1/stats.safetensors"):  # fmt: skip
            assert path in job, job
        background = job_of(proc.stdout, "background", f"background=background{variant}, seed=1")
        corpus = "background_oasst1.seed1.jsonl" if variant else "data/background.jsonl"
        assert corpus in background, background
    overlay = (
        "retrofit_variants:\n  paper3: {background: {batch_size: 2}}\n"
        "arms:\n  smf_kl: {smf: {retrofit: paper3}}\n"
    )
    demo = dry_run(workflow, overlay)
    assert demo.returncode == 0, demo.stderr[-2000:]
    assert "results/background_paper3/stats.safetensors" in demo.stdout
    assert "results/data/background_oasst1.seed0.jsonl" in demo.stdout


def test_an_lr_sweep_adds_one_branch_per_rate(workflow):
    """Each extra rate is its own arm (trained and evaluated per seed) in the trade-off report,
    not in the main table; the arm's named target builds its sweep points too."""
    proc = dry_run(workflow, "seeds: [0, 1]\narms:\n  smf_kl: {lr_sweep: [0.005, 0.05]}\n")
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    for run in ("smf_kl_lr0.005", "smf_kl_lr0.05"):
        for seed in (0, 1):
            assert f"results/medmcqa/runs/{run}/seed{seed}/summary.json" in out, run
    tables = job_of(out, "tables", "experiment=medmcqa")
    assert "smf_kl-seed0" in tables and "_lr0.005" not in tables
    tradeoff = job_of(out, "tradeoff", "experiment=medmcqa")
    assert "results/medmcqa/eval/smf_kl_lr0.05-seed1/wikitext.json" in tradeoff
    named = snakemake(workflow, "smf_kl", "--configfile", "config/demo.yaml", "overlay.yaml")
    assert "results/medmcqa/eval/smf_kl_lr0.005-seed0/medmcqa.json" in named.stdout


def test_naturalquestions_joins_the_fact_experiment_by_overlay(workflow):
    """config/facts_nq.yaml adds paper 1's NQ probe to the fact experiment (paper profile)."""
    proc = snakemake(
        workflow, "facts", "--configfile", "config/config.yaml", "config/facts_nq.yaml"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    for path in ("results/facts/eval/base/nq.json", "results/facts/eval/smf_tfidf-seed2/nq.json",
                 "results/data/nq_open.jsonl"):  # fmt: skip
        assert path in proc.stdout, path
    # the main experiment is untouched
    assert "results/medmcqa/eval/base/nq.json" not in proc.stdout


def planned_outputs(stdout: str) -> list[str]:
    """Every output file a dry run plans (its jobs' `output:` lines)."""
    lines = re.findall(r"^\s+output: (.+)$", stdout, flags=re.M)
    # without flags such as " (update)"
    return [path.split(" (")[0] for line in lines for path in line.split(", ")]


def fake_cache(root: Path, *args: str) -> None:
    """Every output of the DAG present and up to date (empty files; folders for the outputs
    without a suffix: models, adapters), as after a finished run."""
    proc = snakemake(root, *args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for rel in planned_outputs(proc.stdout):
        path = root / rel
        if path.suffix:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("{}\n")
        else:
            path.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "snakemake", "--touch", "--cores", "1", *args]
    subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=300, check=True)
    assert "Nothing to be done" in snakemake(root, *args).stdout


def test_adding_an_experiment_is_config_only(tmp_path):
    """A third experiment from an overlay alone (a copy of the fact experiment under a new
    name) is planned under results/<name>/ by the same rules; with the demo's two experiments
    cached, nothing of theirs is planned again."""
    root = copy_workflow(tmp_path)
    demo = ["--configfile", "config/demo.yaml"]
    fake_cache(root, *demo)
    facts = yaml.safe_load((root / "config/config.yaml").read_text())["experiments"]["facts"]
    (root / "third.yaml").write_text(yaml.safe_dump({"experiments": {"facts_copy": facts}}))
    proc = snakemake(root, *demo, "third.yaml")
    assert proc.returncode == 0, proc.stderr[-2000:]
    outputs = planned_outputs(proc.stdout)
    assert outputs and all(p.startswith("results/facts_copy/") for p in outputs), outputs
    for rel in ("runs/smf_kl_lr8/seed0/summary.json", "eval/base/facts.json", "tables/main.csv",
                "tables/matched_learning_facts_taught.csv"):  # fmt: skip
        assert f"results/facts_copy/{rel}" in outputs, rel
    stats = dict(re.findall(r"^(\w+)\s+(\d+)$", proc.stdout.split("Job stats:")[1], re.M))
    # its 4 arms x 3 learning rates (the paper profile's), one seed; base and retrofit on its
    # own probes; its report; `all`
    assert {k: int(v) for k, v in stats.items() if k != "total"} == {
        "finetune_full": 3, "finetune_lora": 3, "finetune_smf": 6, "evaluate_facts_copy": 12,
        "evaluate_facts_copy_reference": 2, "tables": 1, "figures": 1, "tradeoff": 1,
        "tradeoff_extra": 1, "all": 1,
    }  # fmt: skip
    named = snakemake(root, "facts_copy", *demo, "third.yaml")
    assert named.returncode == 0 and set(planned_outputs(named.stdout)) == set(outputs)
