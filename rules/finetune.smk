# One rule per arm kind of the registry (smf.training.arms.registry: their artifacts differ), for
# every experiment; all share workflow/scripts/finetune.py. Everything a run depends on is in
# params, so changing one arm's config reruns that arm only.


for _kind in KINDS.values():

    rule:
        """One arm x seed of an experiment."""
        name:
            f"finetune_{_kind.name}"
        input:
            unpack(finetune_inputs),
        output:
            artifact=(directory if _kind.artifact_is_dir else str)(
                f"{RESULTS}/{{experiment}}/runs/{{arm}}/seed{{seed}}/{_kind.artifact}"
            ),
            log=f"{RESULTS}/{{experiment}}/runs/{{arm}}/seed{{seed}}/train_log.jsonl",
            summary=f"{RESULTS}/{{experiment}}/runs/{{arm}}/seed{{seed}}/summary.json",
        log:
            "logs/{experiment}/finetune/{arm}/seed{seed}.log",
        benchmark:
            f"{RESULTS}/{{experiment}}/benchmarks/finetune/{{arm}}/seed{{seed}}.tsv"
        wildcard_constraints:
            arm=arms_of_kind(_kind.name),
        conda:
            "../envs/smf.yaml"
        resources:
            **job_resources("finetune"),
            gpu=GPU,
        params:
            arm_cfg=lambda wc: arm_spec(wc.experiment, wc.arm),
            train=lambda wc: arm_train_config(wc.experiment, wc.arm),
            header=lambda wc: EXPERIMENTS[wc.experiment]["header"],
            task_kind=lambda wc: EXPERIMENTS[wc.experiment]["task_kind"],
            device=DEVICE,
            work_dir=lambda wc: checkpoint_dir(
                wc.experiment, "runs", wc.arm, f"seed{wc.seed}"
            ),
            code=SMF_VERSION,
        script:
            "../workflow/scripts/finetune.py"
