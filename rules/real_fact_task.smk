from smf.tasks import real_fact_task as real_fact_task_checks

# checked before any job when a `data` entry reads the task's files (the experiment is used)
if any(
    str((entry.get("source") or {}).get("path") or "").startswith(
        f"{RESULTS}/real_fact_task/"
    )
    for entry in config["data"].values()
):
    try:
        real_fact_task_checks.check_spec(config["real_fact_task"], config["data"])
    except ValueError as err:
        raise WorkflowError(str(err)) from None


# the keys the cached answers depend on (the others only change the selection): a changed
# n_facts rebuilds the task, not the answers
REAL_FACT_ANSWER_SPEC = {
    key: config["real_fact_task"][key]
    for key in ("dataset", "records", "prompts", "max_new_tokens")
}


rule real_fact_answers:
    """Issue 27: the base model's greedy answers and gold log-probs on the first
    real_fact_task.records records of a qa dataset (smf.probes.base_answers); resumable.
    """
    input:
        base=f"{RESULTS}/models/base",
        data=dataset_path(config["real_fact_task"]["dataset"]),
    output:
        answers=f"{RESULTS}/real_fact_task/base_answers.jsonl",
        stats=f"{RESULTS}/real_fact_task/base_answers.stats.json",
    log:
        "logs/real_fact_answers.log",
    benchmark:
        f"{RESULTS}/benchmarks/real_fact_answers.tsv"
    conda:
        "../envs/smf.yaml"
    threads: SEQUENTIAL_STAGE_THREADS
    resources:
        **job_resources("evaluate"),
        gpu=GPU,
    params:
        spec=REAL_FACT_ANSWER_SPEC,
        device=DEVICE,
        batch_size=config["real_fact_task"]["batch_size"],
        work_dir=checkpoint_dir("real_fact_answers"),
        code=SMF_VERSION,
    script:
        "../workflow/scripts/real_fact_answers.py"


rule real_fact_task:
    """Issue 27's task: F (facts the base got wrong) in templated wordings, the held-out and
    taught probes, K (questions it got right) (smf.tasks.real_fact_task)."""
    input:
        answers=f"{RESULTS}/real_fact_task/base_answers.jsonl",
    output:
        train=f"{RESULTS}/real_fact_task/facts_train.jsonl",
        eval=f"{RESULTS}/real_fact_task/facts_eval.jsonl",
        taught=f"{RESULTS}/real_fact_task/facts_taught.jsonl",
        known=f"{RESULTS}/real_fact_task/known_eval.jsonl",
        selection=f"{RESULTS}/real_fact_task/selection.json",
    log:
        "logs/real_fact_task.log",
    conda:
        "../envs/smf.yaml"
    params:
        spec=config["real_fact_task"],
        code=SMF_VERSION,
    script:
        "../workflow/scripts/real_fact_task.py"
