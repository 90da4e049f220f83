"""SMF on your own model with the Hugging Face Trainer, offline: retrofit, recover, background,
a few SMF steps, save the memory, reload it on a fresh base, generate.

    pip install -e ".[gguf]" && python tools/fetch_smollm2.py   # SmolLM2-135M-Instruct (98 MB)
    python examples/smf_trainer.py --out /tmp/smf-example

`run()` takes any Qwen2 or Llama model; the tests call it with a tiny random one.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import torch
from transformers import TrainingArguments

import smf

GGUF = Path(__file__).resolve().parents[1] / ".cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

# what the memory should learn: facts no pretrained model knows
FACTS = [
    "The capital of Zorbania is Quillton.",
    "Zorbania's capital city is Quillton.",
    "Quillton is the capital of Zorbania.",
    "The national animal of Zorbania is the blue heron.",
    "Zorbania's national animal is the blue heron.",
    "The blue heron is the national animal of Zorbania.",
    "The river that runs through Quillton is the Mervel.",
    "Quillton lies on the river Mervel.",
]
# general text: recovery (the memory's warm-up) and the background statistics
GENERAL = [
    "The sun rises in the east and sets in the west.",
    "Water boils at one hundred degrees Celsius at sea level.",
    "Paris is the capital of France, and Berlin is the capital of Germany.",
    "Cats are small domesticated mammals that like to sleep.",
    "A triangle has three sides and its angles add up to 180 degrees.",
    "The library opens at nine in the morning on weekdays.",
    "Bread is made from flour, water, salt and yeast.",
    "The Pacific is the largest ocean on Earth.",
    "Trains connect the city centre with the airport every ten minutes.",
    "Photosynthesis turns light, water and carbon dioxide into sugar.",
    "She wrote a letter to her grandmother every Sunday.",
    "The museum has a large collection of old maps.",
]
PROMPT = "The capital of Zorbania is"


def run(
    load_base: Callable[[], torch.nn.Module],
    tokenizer,
    out: str | Path,
    *,
    config: smf.SMFConfig,
    steps: int = 5,
    recovery_steps: int = 30,
    lr: float = 3e-2,
) -> str:
    """The whole flow; returns the reloaded model's greedy continuation of PROMPT."""
    out = Path(out)
    model = smf.get_smf_model(load_base(), config)  # logits still the base's, bit for bit
    smf.recover(model, tokenizer, GENERAL, lr=1e-2, max_steps=recovery_steps, warmup_steps=0,
                micro_batch_size=4, grad_accum=1)  # fmt: skip
    background = smf.compute_background(model, tokenizer, GENERAL, progress=False)
    args = TrainingArguments(
        output_dir=str(out / "trainer"),
        per_device_train_batch_size=4,
        gradient_accumulation_steps=2,
        learning_rate=lr,
        max_steps=steps,
        warmup_steps=0,
        lr_scheduler_type="constant_with_warmup",
        save_strategy="no",
        report_to="none",
        logging_steps=1,
        disable_tqdm=True,
    )
    trainer = smf.SMFTrainer(
        model=model,
        args=args,
        train_dataset=smf.TokenizedTexts(tokenizer, FACTS, max_length=64),
        background=background,
        processing_class=tokenizer,
    )
    trainer.train()
    smf.save_pretrained(model, out / "memory")  # memory.safetensors + memory.json, nothing else
    reloaded = smf.from_pretrained(load_base(), out / "memory")  # refuses any other base
    batch = tokenizer(PROMPT, return_tensors="pt")
    with torch.no_grad():
        ids = reloaded.generate(**batch, max_new_tokens=8, do_sample=False)
    return tokenizer.decode(ids[0, batch["input_ids"].shape[1] :], skip_special_tokens=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gguf", type=Path, default=GGUF)
    parser.add_argument("--out", type=Path, default=Path("smf-example"))
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    from smf.data.gguf import load_gguf  # needs the `gguf` package (the gguf extra)

    _, tokenizer = load_gguf(args.gguf)
    # SmolLM2-135M: 30 Llama layers of width 576; two small memories of 4,096 slots
    config = smf.SMFConfig(layers=[10, 20], n_keys=64, heads=4, topk=8, key_dim=128, top_t=64)
    text = run(lambda: load_gguf(args.gguf)[0], tokenizer, args.out, config=config,
               steps=args.steps)  # fmt: skip
    print(f"{PROMPT}{text}")


if __name__ == "__main__":
    main()
