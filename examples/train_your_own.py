"""Train GMSA on your own backbone: autoencoder pretraining, then KEFT, then answer from soft tokens.

With no arguments this runs a tiny random Llama backbone on a few sentences (a minute on a laptop CPU),
which shows the whole recipe but learns nothing useful. Point it at a real backbone and real data:

    python examples/train_your_own.py --backbone meta-llama/Llama-3.2-1B \
        --ae-data ae.jsonl --qa-data qa.jsonl --out runs/llama1b --steps 20000 --batch-size 4 --bf16

For several GPUs, run the `gmsa train` commands from the README under torchrun or accelerate.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from gmsa_integrations import GMSAConfig, GMSAEngine
from gmsa_integrations.testing import char_tokenizer, random_backbone
from gmsa_integrations.training import TrainConfig, train

SENTENCES = [
    "Mira Solen was born in Kethport in 1971.",
    "Orvan Tools was founded by Tamsin Reil in 1958.",
    "Dalby lies on the river Anwe.",
    "Kethport has a population of 41,000.",
]


def _tiny_setup(root: Path) -> tuple[str, str, str]:
    backbone = root / "backbone"
    random_backbone("llama", layers=4, hidden=64, heads=4, kv_heads=2).save_pretrained(backbone)
    char_tokenizer().save_pretrained(backbone)
    ae = root / "ae.jsonl"
    ae.write_text("".join(json.dumps({"text": s}) + "\n" for s in SENTENCES * 4))
    qa = root / "qa.jsonl"
    qa.write_text(
        json.dumps({"question": "Who founded Orvan Tools?", "answers": ["Tamsin Reil"], "passages": SENTENCES[1:2]})
        + "\n"
    )
    return str(backbone), str(ae), str(qa)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", help="backbone path or hub id (default: a tiny random Llama)")
    parser.add_argument("--ae-data", help="autoencoder JSON Lines ({'text': ...})")
    parser.add_argument("--qa-data", help="QA JSON Lines ({'question', 'answers', 'passages'})")
    parser.add_argument("--out", help="output directory (default: a temporary one)")
    parser.add_argument("--steps", type=int, default=30, help="steps per stage")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--encoder-layers", type=int, default=None, help="default: 8, or 2 for the tiny model")
    parser.add_argument("--bf16", action="store_true", help="mixed precision on a GPU")
    args = parser.parse_args()

    out = Path(args.out or tempfile.mkdtemp(prefix="gmsa-"))
    tiny = args.backbone is None
    if tiny:
        print("No --backbone given: training a tiny random Llama to show the recipe (it learns nothing useful).")
        backbone, ae_data, qa_data = _tiny_setup(out)
    else:
        backbone, ae_data, qa_data = args.backbone, args.ae_data, args.qa_data
        if not (ae_data and qa_data):
            parser.error("--ae-data and --qa-data are required with --backbone")
    common = dict(max_steps=args.steps, batch_size=args.batch_size, bf16=args.bf16 or None, logging_steps=10)
    layers = args.encoder_layers or (2 if tiny else 8)
    gmsa = GMSAConfig(encoder_layers=layers, lora_r=8, lora_alpha=16) if tiny else GMSAConfig(encoder_layers=layers)
    train(
        TrainConfig(
            stage="ae",
            backbone=backbone,
            data=ae_data,
            output_dir=str(out / "ae"),
            gmsa=gmsa,
            **({"learning_rate": 2e-3} if tiny else {}),
            **common,
        )
    )
    train(TrainConfig(stage="keft", init=str(out / "ae"), data=qa_data, output_dir=str(out / "keft"), **common))

    engine = GMSAEngine.from_pretrained(out / "keft")
    soft_prompts = engine.compress(SENTENCES[1:2], rate=4)
    answer = engine.generate("Who founded Orvan Tools?", soft_prompts=soft_prompts, max_new_tokens=16)
    print(f"checkpoint: {out / 'keft'}\nanswer from {soft_prompts[0].num_tokens} soft tokens: {answer!r}")


if __name__ == "__main__":
    main()
