rule tables:
    """The paper's main table from cached eval JSONs (no model is loaded)."""
    input:
        report_eval_files(MAIN_MODELS),
    output:
        csv=report(
            "results/tables/main.csv",
            caption="../docs/report/table.rst",
            category="Tables",
        ),
        md="results/tables/main.md",
        tex="results/tables/main.tex",
    log:
        "logs/report/tables.log",
    conda:
        "../envs/smf.yaml"
    params:
        arms=RETROFITS[1:] + MAIN_ARMS,  # after base and retrofit: variants, then arms
        probes=REPORT_PROBES,
        note=STD_NOTE,
        runs=fingerprints(MAIN_MODELS),  # a changed run config rebuilds the table
        code=SMF_VERSION,
    script:
        "../workflow/scripts/tables.py"


rule figures:
    """Learning vs forgetting per probe, and training loss curves per arm."""
    input:
        evals=report_eval_files(MAIN_MODELS),
        logs=expand(
            "results/runs/{arm}/seed{seed}/train_log.jsonl", arm=MAIN_ARMS, seed=SEEDS
        ),
    output:
        tradeoff_png=report(
            "results/figures/learning_vs_forgetting.png",
            caption="../docs/report/tradeoff.rst",
            category="Figures",
        ),
        tradeoff_pdf="results/figures/learning_vs_forgetting.pdf",
        loss_png=report(
            "results/figures/loss_curves.png",
            caption="../docs/report/loss.rst",
            category="Figures",
        ),
        loss_pdf="results/figures/loss_curves.pdf",
    log:
        "logs/report/figures.log",
    conda:
        "../envs/smf.yaml"
    params:
        log_paths={
            arm: [f"{RESULTS}/runs/{arm}/seed{seed}/train_log.jsonl" for seed in SEEDS]
            for arm in MAIN_ARMS
        },
        learning_probe=config["learning_probe"],
        forgetting_probes=[p for p in REPORT_PROBES if p != config["learning_probe"]],
        runs=fingerprints(MAIN_MODELS),
        code=SMF_VERSION,
    script:
        "../workflow/scripts/figures.py"


rule tradeoff:
    """Gains and forgetting with intervals; forgetting at learning levels; arm differences."""
    input:
        report_eval_files(["base"] + [f"{a}-seed{s}" for a in ARMS for s in SEEDS]),
    output:
        csv="results/tables/matched_learning.csv",
        md="results/tables/matched_learning.md",
        runs_csv="results/tables/learning_gains.csv",
        differences_csv="results/tables/matched_differences.csv",
        png=report(
            "results/figures/pareto_fronts.png",
            caption="../docs/report/pareto.rst",
            category="Figures",
        ),
        pdf="results/figures/pareto_fronts.pdf",
    log:
        "logs/report/tradeoff.log",
    conda:
        "../envs/smf.yaml"
    params:
        families=FAMILIES,
        learning_probe=config["learning_probe"],
        forgetting_probes=[p for p in REPORT_PROBES if p != config["learning_probe"]],
        settings=config["tradeoff"],
        runs=fingerprints(["base"] + [f"{a}-seed{s}" for a in ARMS for s in SEEDS]),
        code=SMF_VERSION,
    script:
        "../workflow/scripts/tradeoff.py"
