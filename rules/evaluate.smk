rule evaluate:
    """One model on one probe: base, retrofit, or an arm x seed."""
    input:
        unpack(eval_inputs),
    output:
        RESULTS + "/eval/{model}/{probe}.json",
    params:
        kind=lambda wc: model_kind(wc.model),
        probe_cfg=lambda wc: config["probes"][wc.probe],
        batch_size=config["eval"]["batch_size"],
        dtype=config["eval"]["dtype"],
        header=config["task"]["header"],
        device=DEVICE,
        code=SMF_VERSION,
    resources:
        gpu=GPU,
    log:
        "logs/eval/{model}/{probe}.log",
    benchmark:
        "benchmarks/eval/{model}/{probe}.tsv"
    script:
        "../workflow/scripts/evaluate.py"


for _arm in ARMS:

    rule:
        """Named target: one arm's branch (all seeds, all probes)."""
        name:
            _arm
        input:
            eval_files(arm_models(_arm)),
        default_target: False
