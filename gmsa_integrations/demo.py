"""`gmsa demo`: compress passages into soft tokens and answer from them.

Until the embedded default model ships, this runs on a tiny *untrained* random backbone: it
shows the mechanics (token counts, timings, the API) and says plainly that its answers are noise.
"""

from __future__ import annotations

import time

from .engine import GMSAConfig, GMSAEngine
from .engine.backbones import char_tokenizer, random_backbone

PASSAGES = [
    "Mira Solen was born in Kethport in 1971. She studied marine biology and works for Orvan Tools.",
    "Orvan Tools was founded in 1958 by Tamsin Reil. Its headquarters are in Dalby, on the river Anwe.",
]


def _engine() -> tuple[GMSAEngine, bool]:
    try:
        return GMSAEngine.from_pretrained(), True
    except FileNotFoundError:
        backbone = random_backbone("llama", layers=4, hidden=64, heads=4, kv_heads=2)
        config = GMSAConfig(encoder_layers=2, lsa_layers=1, lora_r=8, max_window_tokens=256)
        return GMSAEngine.from_backbone(backbone, char_tokenizer(), config), False


def run_demo(question: str | None = None, rate: int = 4) -> int:
    engine, trained = _engine()
    if not trained:
        print("NOTE: the embedded default model is not bundled yet; this demo runs an UNTRAINED tiny")
        print("      random backbone, so it shows the mechanics only and its answers are noise.\n")
    question = question or "In which city is the employer of Mira Solen headquartered?"
    start = time.perf_counter()
    soft_prompts = engine.compress(PASSAGES, rate=rate, show_progress=True)
    compress_s = time.perf_counter() - start
    for text, sp in zip(PASSAGES, soft_prompts, strict=True):
        print(f"passage: {text[:60]}...  {sp.source_tokens} tokens -> {sp.num_tokens} soft tokens (rate {sp.rate})")
    start = time.perf_counter()
    answer = engine.complete(question, soft_prompts=soft_prompts, max_new_tokens=24)
    generate_s = time.perf_counter() - start
    print(f"\nquestion: {question}\nanswer:   {answer.text!r}")
    print(
        f"decoder input: {answer.input_tokens} positions ({answer.soft_tokens} soft) instead of "
        f"{sum(sp.source_tokens for sp in soft_prompts) + answer.input_tokens - answer.soft_tokens}; "
        f"compress {compress_s * 1000:.0f} ms, generate {generate_s * 1000:.0f} ms"
    )
    return 0
