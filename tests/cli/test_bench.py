import json

from gmsa_integrations.cli import main as cli_main
from gmsa_integrations.cli.bench import Shape, bench_compress, bench_latency, flop_bounds, make_passages
from tests.conftest import make_engine


def test_latency_rows_cover_every_method_and_rate():
    engine = make_engine()
    passages = make_passages(3, 40)
    assert all(engine.count_tokens(p) == 40 for p in passages)
    rows = bench_latency(engine, passages, [4, 8], new_tokens=3, repeats=1)
    assert [(r["method"], r["rate"]) for r in rows] == [
        ("full_context", None),
        ("gmsa", 4),
        ("gmsa_cached", 4),
        ("gmsa", 8),
        ("gmsa_cached", 8),
    ]
    for row in rows:
        assert {"latency_s", "ttft_s", "compress_s", "peak_mem_mb", "speedup"} <= set(row)
        assert row["ttft_s"] > 0 and row["latency_s"] > 0
    assert rows[0]["speedup"] == 1.0
    assert engine.store is None  # the benchmark's temporary store is detached afterwards


def test_flop_bound_grows_with_rate_and_caching():
    shape = Shape(layers=24, hidden=512, heads=8, kv_heads=8, intermediate=2048, vocab=32000)
    at4 = flop_bounds(shape, 6, 8, 256, 10, 4, 16)
    at8 = flop_bounds(shape, 6, 8, 256, 10, 8, 16)
    assert 1 < at4["gmsa"] < at4["gmsa_cached"] < at8["gmsa_cached"]
    assert at4["gmsa"] < at8["gmsa"]


def test_compress_throughput_rows():
    rows = bench_compress(make_engine(), make_passages(4, 32), 4, [1, 4], repeats=1)
    assert [r["batch_size"] for r in rows] == [1, 4]
    assert all(r["passages_per_s"] > 0 and r["soft_tokens_per_s"] == 8 * r["passages_per_s"] for r in rows)


def test_bench_cli_writes_json_and_plot(tmp_path):
    out, plot = tmp_path / "bench.json", tmp_path / "bench.png"
    args = [
        "bench",
        "latency",
        "--layers",
        "2",
        "--hidden",
        "64",
        "--heads",
        "4",
        "--vocab",
        "200",
        "--passages",
        "1,2",
        "--passage-tokens",
        "16",
        "--new-tokens",
        "2",
        "--repeats",
        "1",
        "--lora-r",
        "4",
        "--json",
        str(out),
        "--plot",
        str(plot),
    ]
    assert cli_main(args) == 0
    rows = json.loads(out.read_text())["rows"]
    assert {r["context_tokens"] for r in rows} == {16, 32}
    assert all("flop_bound" in r for r in rows)
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_roofline_bound_follows_what_limits_the_machine():
    from gmsa_integrations.cli.bench import Machine, Shape, roofline_seconds

    shape = Shape(layers=30, hidden=576, heads=9, kv_heads=3, intermediate=1536, vocab=49152)
    sizes = dict(encoder_layers=8, passages=8, passage_tokens=256, question=10, new=16)
    compute_bound = Machine(gemm_flops=1e11, bandwidth=float("inf"), bytes_per_value=4)
    memory_bound = Machine(gemm_flops=float("inf"), bandwidth=2e10, bytes_per_value=4)
    bounds = {}
    for name, machine in (("compute", compute_bound), ("memory", memory_bound)):
        for rate in (4, 8):
            seconds = roofline_seconds(shape, machine, rate=rate, **sizes)
            bounds[name, rate] = seconds["full_context"] / seconds["gmsa_cached"]
            assert seconds["gmsa"] > seconds["gmsa_cached"]  # compressing at query time costs extra
    # fewer tokens to prefill: a large bound where FLOPs limit, growing with the rate
    assert bounds["compute", 8] > bounds["compute", 4] > 3
    # where streaming the weights limits, every method reads the same weights per step: little to gain
    assert 1 < bounds["memory", 4] < 1.5
