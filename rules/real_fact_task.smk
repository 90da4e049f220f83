from smf.tasks import real_fact_task as real_fact_task_checks

# checked before any job when a `data` entry reads the task's files (the experiment is used)
if any(reads_real_fact_task(entry) for entry in config["data"].values()):
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

# the task's own keys: the slot overlap's sample size does not rebuild the task
REAL_FACT_TASK_SPEC = {
    key: value
    for key, value in config["real_fact_task"].items()
    if key != "overlap_facts"
}
# the model the slot overlap reads: the main retrofit (under per_run seeding, the first seed's)
OVERLAP_MODEL = f"retrofit-seed{SEEDS[0]}" if PER_RUN else "retrofit"


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
        spec=REAL_FACT_TASK_SPEC,
        code=SMF_VERSION,
    script:
        "../workflow/scripts/real_fact_task.py"


rule slot_overlap:
    """Issue 27: can a held-out question reach the memory rows its fact's training updated?
    Per memory layer, the Jaccard overlap of the slots read at the answer position of each
    fact's taught and held-out QA prompts, against mismatched facts' (chance sharing), for
    the first real_fact_task.overlap_facts facts (smf.training.slot_overlap). On the retrofit
    model: SMF trains only memory value rows, keys and query projections stay frozen, so a
    trained model addresses slots differently only through upstream memory layers' values
    (the first memory layer reads exactly the retrofit's slots).
    """
    input:
        base=f"{RESULTS}/models/base",
        memory=model_artifact(MAIN, OVERLAP_MODEL),
        taught=f"{REAL_FACT_TASK}/facts_taught.jsonl",
        held_out=f"{REAL_FACT_TASK}/facts_eval.jsonl",
    output:
        overlap=SLOT_OVERLAP,
    log:
        "logs/slot_overlap.log",
    benchmark:
        f"{RESULTS}/benchmarks/slot_overlap.tsv"
    conda:
        "../envs/smf.yaml"
    resources:
        **job_resources("evaluate"),
        gpu=GPU,
    params:
        facts=config["real_fact_task"]["overlap_facts"],
        model=OVERLAP_MODEL,
        run=model_fingerprint(MAIN, OVERLAP_MODEL),
        device=DEVICE,
        batch_size=config["real_fact_task"]["batch_size"],
        code=SMF_VERSION,
    script:
        "../workflow/scripts/slot_overlap.py"
