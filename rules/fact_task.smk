rule fact_task:
    """Paper 1's fact-learning task: facts about invented people (smf.tasks.facts)."""
    output:
        train="results/fact_task/facts_train.jsonl",
        eval="results/fact_task/facts_eval.jsonl",
        taught="results/fact_task/facts_taught.jsonl",
    log:
        "logs/fact_task.log",
    conda:
        "../envs/smf.yaml"
    params:
        spec=config["fact_task"],
        code=SMF_VERSION,
    script:
        "../workflow/scripts/fact_task.py"
