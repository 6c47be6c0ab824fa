"""Evaluate a GMSA model: reconstruction and QA tables, JSON rows and plots (what the README shows).

    python examples/evaluate.py                       # a small sample, a few minutes on a CPU
    python examples/evaluate.py --limit 200 --out runs/eval --model runs/my_model

It synthesizes the held-out test world (`gmsa data synth`, unseen names), then runs
`gmsa eval recon`, `gmsa eval qa` and `gmsa eval probe` (the answer-likelihood margins) on it and writes JSON
and PNG files into --out.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gmsa_integrations.cli import main as gmsa
from gmsa_integrations.data.synth import generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/eval", help="output directory")
    parser.add_argument("--limit", type=int, default=20, help="examples per evaluation")
    parser.add_argument("--rates", default="4,8", help="comma-separated compression rates")
    parser.add_argument("--seed", type=int, default=123, help="seed of the synthesized world")
    parser.add_argument("--model", default=None, help="GMSA checkpoint (default: the embedded model)")
    parser.add_argument("--baseline", default=None, help="ICAE-style checkpoint for the reconstruction table")
    args = parser.parse_args()

    out = Path(args.out)
    generate(out / "data", seed=args.seed, train_worlds=1, scale=0.5)
    common = ["--rates", args.rates, "--limit", str(args.limit)] + (["--model", args.model] if args.model else [])
    recon = ["eval", "recon", "--data", str(out / "data" / "ae_test.jsonl"), *common]
    recon += ["--json", str(out / "recon.json"), "--plot", str(out / "recon.png")]
    if args.baseline:
        recon += ["--baseline", args.baseline]
    gmsa(recon)
    qa = ["eval", "qa", "--data", str(out / "data" / "qa_test.jsonl"), *common]
    gmsa([*qa, "--json", str(out / "qa.json"), "--plot", str(out / "qa.png")])
    probe = ["eval", "probe", "--data", str(out / "data" / "qa_test.jsonl"), *common]
    gmsa([*probe, "--json", str(out / "probe.json")])
    print(f"wrote {out}/recon.json, recon.png, qa.json, qa.png, probe.json")


if __name__ == "__main__":
    main()
