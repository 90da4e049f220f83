"""One probe of the config run on a model: its `kind` picks the scorer (multiple_choice:
smf.probes.scoring, perplexity: smf.probes.perplexity, qa: smf.probes.qa)."""

from __future__ import annotations

from smf.probes import perplexity, qa, scoring


def run_probe(model, tokenizer, cfg: dict, records: list[dict], batch_size: int, header: str):
    protocol = cfg["protocol"]
    if cfg["kind"] == "multiple_choice":
        return scoring.multiple_choice_accuracy(
            model, tokenizer, records, protocol=protocol, batch_size=batch_size, header=header
        )
    if cfg["kind"] == "perplexity":
        return perplexity.perplexity(
            model, tokenizer, [r["text"] for r in records], protocol=protocol,
            limit=cfg.get("limit", 1000),
            max_length=cfg.get("max_length"),  # None: the protocol's default
            stride=cfg.get("stride", 512), batch_size=batch_size,
        )  # fmt: skip
    if cfg["kind"] == "qa":
        return qa.qa_accuracy(
            model, tokenizer, records, protocol=protocol,
            max_new_tokens=cfg.get("max_new_tokens"), batch_size=batch_size,
            gold_logprob=cfg.get("gold_logprob", False),
            chat_template=cfg.get("chat_template", False),
        )  # fmt: skip
    raise ValueError(f"probe kind {cfg['kind']!r} is unknown")
