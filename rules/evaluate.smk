# One model on every probe an experiment runs on it (the model is loaded once). Outputs cannot
# vary with a wildcard, so there is one rule per list of probes (EVAL_RULES, rules/common.smk):
# evaluate_<experiment> (its arms; the main experiment's reference models too) and, for a further
# experiment, evaluate_<experiment>_reference (base and retrofit on its own probes).


for _name, _exp, _models, _probes in EVAL_RULES:

    rule:
        """One model of an experiment (base, retrofit, or an arm x seed) on its probes."""
        name:
            _name
        input:
            unpack(eval_inputs),
        output:
            [f"{RESULTS}/{{experiment}}/eval/{{model}}/{p}.json" for p in _probes],
        log:
            "logs/{experiment}/eval/{model}.log",
        benchmark:
            f"{RESULTS}/{{experiment}}/benchmarks/eval/{{model}}.tsv"
        wildcard_constraints:
            experiment=re.escape(_exp),
            model=one_of(_models),
        conda:
            "../envs/smf.yaml"
        resources:
            **job_resources("evaluate"),
            gpu=GPU,
        params:
            kind=lambda wc: model_kind(wc.experiment, wc.model),
            run=lambda wc: model_fingerprint(wc.experiment, wc.model),
            probes=lambda wc: {
                p: EXPERIMENTS[wc.experiment]["probe_specs"][p]
                for p in eval_probes(wc.experiment, wc.model)
            },
            batch_size=config["eval"]["batch_size"],
            dtype=config["eval"]["dtype"],
            memory_dtype=config["eval"]["memory_dtype"],
            header=lambda wc: EXPERIMENTS[wc.experiment]["header"],
            device=DEVICE,
            code=SMF_VERSION,
        script:
            "../workflow/scripts/evaluate.py"
