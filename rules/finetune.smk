# One rule per arm kind (their artifacts differ); all share workflow/scripts/finetune.py.
# Everything a run depends on is in params, so changing one arm's config reruns that arm only.


rule finetune_full:
    input:
        base="results/models/base",
        task=lambda wc: task_path(wc.seed),
    output:
        artifact=directory("results/runs/{arm}/seed{seed}/model"),
        log="results/runs/{arm}/seed{seed}/train_log.jsonl",
        summary="results/runs/{arm}/seed{seed}/summary.json",
    log:
        "logs/finetune/{arm}/seed{seed}.log",
    benchmark:
        "results/benchmarks/finetune/{arm}/seed{seed}.tsv"
    wildcard_constraints:
        arm=one_of(arms_of_kind("full")),
    conda:
        "../envs/smf.yaml"
    resources:
        **job_resources("finetune"),
        gpu=GPU,
    params:
        arm_cfg=lambda wc: config["arms"][wc.arm],
        train=lambda wc: arm_train_config(wc.arm),
        header=config["task"]["header"],
        device=DEVICE,
        work_dir=lambda wc: checkpoint_dir("runs", wc.arm, f"seed{wc.seed}"),
        code=SMF_VERSION,
    script:
        "../workflow/scripts/finetune.py"


use rule finetune_full as finetune_lora with:
    output:
        artifact=directory("results/runs/{arm}/seed{seed}/adapter"),
        log="results/runs/{arm}/seed{seed}/train_log.jsonl",
        summary="results/runs/{arm}/seed{seed}/summary.json",
    wildcard_constraints:
        arm=one_of(arms_of_kind("lora")),


use rule finetune_full as finetune_smf with:
    input:
        base="results/models/base",
        task=lambda wc: task_path(wc.seed),
        memory=lambda wc: retrofit_memory(retrofit_of(wc.arm), wc.seed),
        background=lambda wc: f"{background_of(retrofit_of(wc.arm), wc.seed)}/stats.safetensors",
    output:
        artifact="results/runs/{arm}/seed{seed}/memory.safetensors",
        log="results/runs/{arm}/seed{seed}/train_log.jsonl",
        summary="results/runs/{arm}/seed{seed}/summary.json",
    wildcard_constraints:
        arm=one_of(arms_of_kind("smf")),
