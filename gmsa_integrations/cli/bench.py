"""``gmsa bench latency`` and ``gmsa bench compress``: honest speed figures on a real-shape decoder.

``--model default`` (or a checkpoint) measures a real model on real text (the bundled corpus); otherwise,
since weights do not change speed, the decoder is randomly initialised at the requested shape.
Every method runs in one process on the same engine: ``full_context`` (the passages as text to the
original decoder), ``gmsa`` (compress, then generate from soft tokens) and ``gmsa_cached`` (soft
tokens already in a `SoftTokenStore`, as after ``gmsa index build``). Each passage is encoded as
its own sequence, as at indexing time. Beside each measured speed-up two bounds are printed, so a
reader can tell overheads from the method's limit: the FLOP ratio, and the roofline bound from this
machine's own measured GEMM rate and stream bandwidth (`measure_machine`), where every forward pass
costs the larger of its FLOPs and the bytes it reads (decoding is bound by the weights it streams).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import platform
import random
import statistics
import string
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from ..engine import GMSAConfig, GMSAEngine, SoftTokenStore
from ..engine.merging import num_soft_tokens
from ..extras import require
from ..testing import ARCHITECTURES, SHAPES, char_tokenizer, random_backbone
from .args import int_list

METHODS = ("full_context", "gmsa", "gmsa_cached")


@dataclass(frozen=True)
class Shape:
    arch: str = "llama"
    layers: int = 24
    hidden: int = 512
    heads: int = 8
    kv_heads: int = 8
    intermediate: int = 2048
    vocab: int = 32000

    @property
    def params_per_layer(self) -> int:
        head_dim = self.hidden // self.heads
        attention = 2 * self.hidden * self.hidden + 2 * self.hidden * self.kv_heads * head_dim
        return attention + 3 * self.hidden * self.intermediate


def prefill_flops(shape: Shape, layers: int, tokens: int) -> float:
    """Forward FLOPs of ``layers`` layers over ``tokens`` causal positions (matmuls + attention)."""
    return 2.0 * tokens * layers * shape.params_per_layer + 2.0 * layers * shape.hidden * tokens * tokens


def decode_flops(shape: Shape, context: int, new_tokens: int) -> float:
    per_token = 2.0 * shape.layers * shape.params_per_layer + 2.0 * shape.hidden * shape.vocab
    attention = sum(4.0 * shape.layers * shape.hidden * (context + i) for i in range(new_tokens))
    return new_tokens * per_token + attention


def flop_bounds(
    shape: Shape, encoder_layers: int, passages: int, passage_tokens: int, question: int, rate: int, new: int
) -> dict[str, float]:
    """Speed-up each method could reach if latency were proportional to FLOPs."""
    full_ctx = passages * passage_tokens + question
    soft = passages * num_soft_tokens(passage_tokens, rate)
    full = prefill_flops(shape, shape.layers, full_ctx) + decode_flops(shape, full_ctx, new)
    cached = prefill_flops(shape, shape.layers, soft + question) + decode_flops(shape, soft + question, new)
    encode = passages * prefill_flops(shape, encoder_layers, passage_tokens) + passages * prefill_flops(
        shape, 1, soft // passages
    )
    return {"gmsa": full / (cached + encode), "gmsa_cached": full / cached, "full_context": 1.0}


@dataclass(frozen=True)
class Machine:
    """What the machine the benchmark runs on can do, measured by the benchmark itself."""

    gemm_flops: float
    """Matrix-multiply rate (FLOP/s) of a large square matmul in the benchmark's dtype."""
    bandwidth: float
    """Memory read rate (bytes/s) of a sum over a tensor far larger than the caches."""
    bytes_per_value: int


def measure_machine(device: torch.device, dtype: torch.dtype, repeats: int = 5) -> Machine:
    """Best-of-``repeats`` GEMM rate and stream bandwidth on ``device`` in ``dtype``."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def best(run: Callable[[], object]) -> float:
        run()
        sync()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            sync()
            times.append(time.perf_counter() - start)
        return min(times)

    n = 4096 if device.type == "cuda" else 1024
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    gemm = 2.0 * n**3 / best(lambda: a @ b)
    values = (1 << 30 if device.type == "cuda" else 1 << 28) // torch.finfo(dtype).bits * 8
    stream = torch.ones(values, device=device, dtype=dtype)
    bandwidth = stream.numel() * stream.element_size() / best(lambda: stream.sum())
    return Machine(gemm, bandwidth, stream.element_size())


def roofline_seconds(
    shape: Shape,
    machine: Machine,
    encoder_layers: int,
    passages: int,
    passage_tokens: int,
    question: int,
    rate: int,
    new: int,
) -> dict[str, float]:
    """Per method, the least time the machine allows: every forward pass costs the larger of its FLOPs at the
    GEMM rate and the bytes it must read (weights, and the KV cache while decoding) at the stream bandwidth."""
    size = machine.bytes_per_value
    layer_bytes = shape.params_per_layer * size
    head_bytes = shape.hidden * shape.vocab * size
    kv_per_token = 2 * shape.layers * shape.kv_heads * (shape.hidden // shape.heads) * size

    def forward(layers: int, tokens: int, with_head: bool) -> float:
        flops = prefill_flops(shape, layers, tokens) + (2.0 * shape.hidden * shape.vocab if with_head else 0.0)
        return max(flops / machine.gemm_flops, (layers * layer_bytes + head_bytes * with_head) / machine.bandwidth)

    def answer(context: int) -> float:
        seconds = forward(shape.layers, context, True)  # prefill, then one token per step
        for step in range(1, new):
            flops = decode_flops(shape, context + step, 1)
            read = shape.layers * layer_bytes + head_bytes + kv_per_token * (context + step)
            seconds += max(flops / machine.gemm_flops, read / machine.bandwidth)
        return seconds

    soft = passages * num_soft_tokens(passage_tokens, rate)
    encode = passages * (forward(encoder_layers, passage_tokens, False) + forward(1, soft // passages, False))
    cached = answer(soft + question)
    return {
        "full_context": answer(passages * passage_tokens + question),
        "gmsa": encode + cached,
        "gmsa_cached": cached,
    }


class PeakMemory:
    """Peak extra memory of a block: CUDA allocator peak, or sampled process RSS on the CPU."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak_mb = 0.0

    @staticmethod
    def _rss_mb() -> float:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device) / 2**20
            return self
        with contextlib.suppress(OSError):  # hand freed heap back to the OS so the baseline is honest
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        self._base = self._rss_mb()
        self._peak = self._base
        self._stop = threading.Event()

        def sample() -> None:
            while not self._stop.is_set():
                self._peak = max(self._peak, self._rss_mb())
                time.sleep(0.002)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak_mb = torch.cuda.max_memory_allocated(self.device) / 2**20 - self._base
            return
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self._peak, self._rss_mb()) - self._base


def make_passages(count: int, tokens: int, seed: int = 0) -> list[str]:
    """Passages of exactly ``tokens`` tokens for the character tokenizer."""
    rng = random.Random(seed)
    alphabet = string.ascii_lowercase + "      "
    return ["".join(rng.choice(alphabet) for _ in range(tokens)) for _ in range(count)]


def corpus_passages(engine: GMSAEngine, count: int, tokens: int) -> list[str]:
    """``count`` passages of real English text (the bundled corpus), each about ``tokens`` tokens long."""
    from ..data.corpus import read_corpus
    from .demo import BUNDLED_CORPUS

    text = " ".join(p.text for p in read_corpus(BUNDLED_CORPUS))
    ids = engine.tokenizer(text, add_special_tokens=False)["input_ids"]
    while len(ids) < count * tokens:
        ids = ids + ids
    return [engine.tokenizer.decode(ids[i * tokens : (i + 1) * tokens]) for i in range(count)]


def shape_of(engine: GMSAEngine) -> Shape:
    config = engine.model.backbone.config
    return Shape(
        arch=config.model_type,
        layers=config.num_hidden_layers,
        hidden=config.hidden_size,
        heads=config.num_attention_heads,
        kv_heads=config.num_key_value_heads,
        intermediate=config.intermediate_size,
        vocab=config.vocab_size,
    )


def build_engine(shape: Shape, encoder_layers: int, lora_r: int, device: str, dtype: torch.dtype) -> GMSAEngine:
    backbone = random_backbone(
        shape.arch,
        layers=shape.layers,
        hidden=shape.hidden,
        heads=shape.heads,
        kv_heads=shape.kv_heads,
        intermediate=shape.intermediate,
        vocab=max(shape.vocab, 104),
        max_positions=32768,
        dtype=dtype,
    ).to(device)
    config = GMSAConfig(encoder_layers=encoder_layers, lsa_layers=1, lora_r=lora_r, max_window_tokens=4096)
    return GMSAEngine.from_backbone(backbone, char_tokenizer(), config)


def _timed(run: Callable[[int], float], new_tokens: int, repeats: int, device: torch.device) -> dict[str, float]:
    """Median end-to-end latency, time to first token (the same pipeline stopped after one token)
    and compression time over ``repeats`` runs, after one warm-up. ``run(n)`` generates n tokens
    and returns the seconds it spent compressing."""
    run(new_tokens)
    latencies, ttfts, compress = [], [], []
    with PeakMemory(device) as memory:
        for _ in range(repeats):
            start = time.perf_counter()
            compress.append(run(new_tokens))
            latencies.append(time.perf_counter() - start)
    for _ in range(repeats):
        start = time.perf_counter()
        run(1)
        ttfts.append(time.perf_counter() - start)
    return {
        "latency_s": statistics.median(latencies),
        "ttft_s": statistics.median(ttfts),
        "compress_s": statistics.median(compress),
        "peak_mem_mb": round(memory.peak_mb, 1),
    }


def bench_latency(
    engine: GMSAEngine,
    passages: Sequence[str],
    rates: Sequence[int],
    *,
    new_tokens: int = 16,
    repeats: int = 3,
    question: str = "what does the text say about the river?",
) -> list[dict[str, Any]]:
    device = engine.device
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def generate(prompt: str, soft_prompts: Any, tokens: int, **kwargs: Any) -> None:
        engine.complete(prompt, soft_prompts, max_new_tokens=tokens, ignore_eos=True, **kwargs)
        sync()

    def full_context(tokens: int) -> float:
        generate("\n".join(passages) + "\n" + question, None, tokens, decoder="original")
        return 0.0

    rows = [{"method": "full_context", "rate": None, **_timed(full_context, new_tokens, repeats, device)}]
    store_dir = tempfile.TemporaryDirectory(prefix="gmsa-bench-store-")
    store = SoftTokenStore(store_dir.name)
    try:
        for rate in rates:

            def gmsa(tokens: int, rate: int = rate) -> float:
                start = time.perf_counter()
                soft_prompts = engine.compress(passages, rate=rate, batch_size=len(passages))
                sync()
                compress_s = time.perf_counter() - start
                generate(question, soft_prompts, tokens)
                return compress_s

            engine.store = None
            rows.append({"method": "gmsa", "rate": rate, **_timed(gmsa, new_tokens, repeats, device)})
            engine.store = store
            engine.compress(passages, rate=rate)  # indexing time: not measured
            rows.append({"method": "gmsa_cached", "rate": rate, **_timed(gmsa, new_tokens, repeats, device)})
    finally:
        engine.store = None
        store.close()
        store_dir.cleanup()
    full = rows[0]["latency_s"]
    for row in rows:
        row["speedup"] = full / row["latency_s"]
    return rows


def bench_compress(
    engine: GMSAEngine, passages: Sequence[str], rate: int, batch_sizes: Sequence[int], repeats: int = 3
) -> list[dict[str, Any]]:
    rows = []
    soft_tokens = sum(num_soft_tokens(engine.count_tokens(p), rate) for p in passages)
    for batch_size in batch_sizes:
        engine.compress(passages[:batch_size], rate=rate, batch_size=batch_size)  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            engine.compress(passages, rate=rate, batch_size=batch_size)
            if engine.device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        seconds = statistics.median(times)
        rows.append(
            {
                "batch_size": batch_size,
                "passages_per_s": len(passages) / seconds,
                "soft_tokens_per_s": soft_tokens / seconds,
            }
        )
    return rows


def hardware() -> dict[str, Any]:
    info = {
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


# ------------------------------------------------------------------------------------------------ CLI
def _shape_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", help="'default' (the embedded model) or a GMSA checkpoint: real weights and text, not a shape"
    )
    parser.add_argument("--shape", choices=sorted(SHAPES), help="a real model's shape (overrides the sizes)")
    parser.add_argument("--arch", default="llama", choices=ARCHITECTURES)
    parser.add_argument("--layers", type=int, default=24)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--kv-heads", type=int, default=None)
    parser.add_argument("--intermediate", type=int, default=None, help="default 4 x hidden")
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--encoder-layers", type=int, default=None, help="default: a quarter of the layers")
    parser.add_argument("--lora-r", type=int, default=128)
    parser.add_argument("--passage-tokens", type=int, default=256)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default=None, choices=["fp32", "bf16"], help="default: bf16 on GPU, fp32 on CPU")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", dest="json_out", help="write the rows as JSON here")


def _shape(args: argparse.Namespace) -> Shape:
    if args.shape:
        return Shape(**SHAPES[args.shape])
    return Shape(
        arch=args.arch,
        layers=args.layers,
        hidden=args.hidden,
        heads=args.heads,
        kv_heads=args.kv_heads or args.heads,
        intermediate=args.intermediate or 4 * args.hidden,
        vocab=args.vocab,
    )


def add_bench_parser(subparsers: argparse._SubParsersAction) -> None:
    bench = subparsers.add_parser("bench", help="latency and throughput benchmarks")
    kinds = bench.add_subparsers(dest="kind", metavar="KIND", required=True)
    latency = kinds.add_parser("latency", help="end-to-end QA latency: full context vs GMSA vs cached GMSA")
    _shape_args(latency)
    latency.add_argument("--passages", type=int_list, default=[8], help="passages per query; a list sweeps length")
    latency.add_argument("--new-tokens", type=int, default=16)
    latency.add_argument("--rates", type=int_list, default=[4, 8])
    latency.add_argument("--plot", help="PNG of speed-up against context length")
    latency.set_defaults(func=_run_latency)
    compress = kinds.add_parser("compress", help="compression throughput against batch size")
    _shape_args(compress)
    compress.add_argument("--passages", type=int, default=32)
    compress.add_argument("--rate", type=int, default=4)
    compress.add_argument("--batch-sizes", type=int_list, default=[1, 4, 16])
    compress.set_defaults(func=_run_compress)


def _setup(args: argparse.Namespace) -> tuple[Shape, GMSAEngine, int]:
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}.get(args.dtype) or (
        torch.bfloat16 if args.device.startswith("cuda") else torch.float32
    )
    if args.model:
        path = None if args.model == "default" else args.model
        engine = GMSAEngine.from_pretrained(path, device=args.device, dtype=dtype)
        shape = shape_of(engine)
        print(f"model {args.model}: {asdict(shape)}, encoder {engine.config.encoder_layers} layers; {hardware()}")
        return shape, engine, engine.config.encoder_layers
    shape = _shape(args)
    encoder_layers = args.encoder_layers or max(1, shape.layers // 4)
    print(f"shape {asdict(shape)}, encoder {encoder_layers} layers, {args.device} {dtype}; {hardware()}")
    return shape, build_engine(shape, encoder_layers, args.lora_r, args.device, dtype), encoder_layers


def _decode_floor_ms(shape: Shape, machine: Machine) -> float:
    """One decode step can take no less than reading every decoder weight once (KV cache aside)."""
    weights = (shape.layers * shape.params_per_layer + shape.hidden * shape.vocab) * machine.bytes_per_value
    return weights / machine.bandwidth * 1000


def _write_json(path: str | None, payload: dict[str, Any]) -> None:
    if path:
        from ..io import atomic_write_json

        atomic_write_json(path, payload)


def _run_latency(args: argparse.Namespace) -> int:
    shape, engine, encoder_layers = _setup(args)
    machine = measure_machine(engine.device, engine.dtype)
    print(
        f"measured here: GEMM {machine.gemm_flops / 1e9:.1f} GFLOP/s, stream read {machine.bandwidth / 1e9:.1f} GB/s; "
        f"decode floor (weights / bandwidth) {_decode_floor_ms(shape, machine):.1f} ms/token"
    )
    question = "what does the text say about the river?"
    q_tokens = engine.count_tokens(question)
    all_rows = []
    header = f"{'context':>8} {'method':<13} {'rate':>4} {'latency_s':>10} {'ttft_s':>8} {'compress_s':>10} "
    print(header + f"{'peak_MB':>8} {'speedup':>8} {'flop_bound':>10} {'roofline':>9} {'of_bound':>8}")
    for count in args.passages:
        if args.model:
            passages = corpus_passages(engine, count, args.passage_tokens)
        else:
            passages = make_passages(count, args.passage_tokens)
        for row in bench_latency(engine, passages, args.rates, new_tokens=args.new_tokens, repeats=args.repeats):
            sizes = (encoder_layers, count, args.passage_tokens, q_tokens, row["rate"] or 1, args.new_tokens)
            roofline = roofline_seconds(shape, machine, *sizes)
            row.update(
                context_tokens=count * args.passage_tokens,
                flop_bound=flop_bounds(shape, *sizes)[row["method"]],
                roofline_s=roofline[row["method"]],
                roofline_bound=roofline["full_context"] / roofline[row["method"]],
            )
            row["of_bound"] = row["speedup"] / row["roofline_bound"]
            all_rows.append(row)
            print(
                f"{row['context_tokens']:>8} {row['method']:<13} {row['rate'] or '-':>4} {row['latency_s']:>10.4f} "
                f"{row['ttft_s']:>8.4f} {row['compress_s']:>10.4f} {row['peak_mem_mb']:>8.1f} "
                f"{row['speedup']:>7.2f}x {row['flop_bound']:>9.2f}x {row['roofline_bound']:>8.2f}x "
                f"{row['of_bound']:>8.2f}"
            )
    _write_json(
        args.json_out,
        {
            "rows": all_rows,
            "shape": asdict(shape),
            "encoder_layers": encoder_layers,
            "new_tokens": args.new_tokens,
            "device": args.device,
            "hardware": hardware(),
            "machine": asdict(machine),
            "decode_floor_ms": _decode_floor_ms(shape, machine),
        },
    )
    if args.plot:
        plot_speedups(all_rows, args.plot)
    return 0


def plot_speedups(rows: list[dict[str, Any]], path: str) -> None:
    try:
        matplotlib = require("matplotlib", "eval")
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - matplotlib is in the eval/dev extras
        raise SystemExit("--plot needs matplotlib: pip install 'gmsa-integrations[eval]'") from None
    fig, ax = plt.subplots(figsize=(6, 4))
    series = sorted({(r["method"], r["rate"]) for r in rows if r["method"] != "full_context"}, key=str)
    for method, rate in series:
        points = sorted((r["context_tokens"], r["speedup"]) for r in rows if (r["method"], r["rate"]) == (method, rate))
        ax.plot(*zip(*points, strict=True), marker="o", label=f"{method} {rate}x")
    ax.axhline(1.0, color="grey", linewidth=0.8)
    ax.set_xlabel("context tokens")
    ax.set_ylabel("speed-up over full context")
    ax.set_xscale("log", base=2)
    ax.legend()
    ax.set_title("End-to-end QA latency")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _run_compress(args: argparse.Namespace) -> int:
    _, engine, _ = _setup(args)
    if args.model:
        passages = corpus_passages(engine, args.passages, args.passage_tokens)
    else:
        passages = make_passages(args.passages, args.passage_tokens)
    rows = bench_compress(engine, passages, args.rate, args.batch_sizes, args.repeats)
    print(f"{'batch':>6} {'passages/s':>11} {'soft tokens/s':>14}")
    for row in rows:
        print(f"{row['batch_size']:>6} {row['passages_per_s']:>11.2f} {row['soft_tokens_per_s']:>14.1f}")
    _write_json(args.json_out, {"rows": rows, "rate": args.rate, "hardware": hardware()})
    return 0
