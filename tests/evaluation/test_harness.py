import json

import pytest

from gmsa_integrations.cli import main
from gmsa_integrations.data.records import AERow, DataError, QARow
from gmsa_integrations.evaluation import (
    QA_METHODS,
    evaluate_answer_likelihood,
    evaluate_qa,
    evaluate_reconstruction,
    exact_match,
    format_table,
)
from gmsa_integrations.evaluation.harness import (
    Row,
    _answer_with,
    drop_tokens,
    exact_match_by_group,
    format_groups,
    surprisal,
    truncate_passage,
)
from tests.conftest import make_engine

PASSAGE = "Ada Lind was born in Varnholm. She works for Kettle Mining as a pilot."


@pytest.fixture(scope="module")
def engine():
    return make_engine("llama")


def test_truncate_keeps_the_soft_token_budget(engine):
    n = engine.count_tokens(PASSAGE)
    kept = truncate_passage(engine, PASSAGE, 4)
    assert engine.count_tokens(kept) == -(-n // 4)
    assert PASSAGE.startswith(kept)


def test_token_drop_keeps_the_most_surprising_tokens_in_order(engine):
    ids = engine.tokenizer(PASSAGE, add_special_tokens=False)["input_ids"]
    scores = surprisal(engine, ids)
    assert scores.shape == (len(ids),)
    kept = drop_tokens(engine, PASSAGE, 4)
    budget = -(-len(ids) // 4)
    top = sorted(scores.topk(budget).indices.tolist())
    assert kept == engine.tokenizer.decode([ids[i] for i in top])


def test_reconstruction_rows_per_rate(engine):
    rows = evaluate_reconstruction(engine, [AERow(PASSAGE), AERow("Short text.")], [4, 8])
    assert [(r.method, r.rate) for r in rows] == [("gmsa", 4), ("gmsa", 8)]
    for row in rows:
        assert 0.0 <= row.values["bleu"] <= 1.0
        assert 0.0 <= row.values["rouge_l"] <= 1.0
        assert row.values["n"] == 2


def test_reconstruction_likelihood_is_what_the_soft_tokens_carry(engine, monkeypatch):
    """nll_gain is zero when the other passage's soft tokens are the same text, and needs no generation."""
    monkeypatch.setattr(engine, "generate", lambda *a, **k: pytest.fail("generate=False must not generate"))
    (same,) = evaluate_reconstruction(engine, [AERow(PASSAGE), AERow(PASSAGE)], [4], generate=False)
    assert set(same.values) == {"nll", "nll_other", "nll_gain", "n"}
    assert same.values["nll"] > 0 and same.values["nll_gain"] == pytest.approx(0, abs=1e-5)
    (own,) = evaluate_reconstruction(engine, [AERow(PASSAGE), AERow("Short text.")], [4], generate=False)
    soft = engine.compress([PASSAGE], rate=4)
    expected = -sum(engine.log_likelihood(engine.config.ae_instruction, PASSAGE, soft)) / engine.count_tokens(PASSAGE)
    assert own.values["nll"] != pytest.approx(own.values["nll_other"])
    assert (own.values["nll"] + own.values["nll_gain"]) == pytest.approx(own.values["nll_other"])
    (single,) = evaluate_reconstruction(engine, [AERow(PASSAGE)], [4], generate=False)
    assert single.values["nll"] == pytest.approx(expected, rel=1e-5) and "nll_gain" not in single.values


def test_reconstruction_measures_the_first_max_length_tokens(engine):
    texts = [PASSAGE, "Short text, but longer than eight tokens."]
    cuts = [engine.tokenizer.decode(engine.tokenizer(t, add_special_tokens=False)["input_ids"][:8]) for t in texts]
    assert all(engine.count_tokens(c) == 8 for c in cuts)
    rows = [AERow(t) for t in texts]
    (measured,) = evaluate_reconstruction(engine, rows, [4], generate=False, max_length=8)
    (expected,) = evaluate_reconstruction(engine, [AERow(c) for c in cuts], [4], generate=False)
    assert measured.values == pytest.approx(expected.values)
    (whole,) = evaluate_reconstruction(engine, rows, [4], generate=False)
    assert whole.values["nll"] != pytest.approx(measured.values["nll"])
    with pytest.raises(ValueError, match="max_length"):
        evaluate_reconstruction(engine, rows, [4], max_length=0)


def test_qa_rows_cover_every_method(engine):
    data = [QARow("Where was Ada Lind born?", ("Varnholm",), (PASSAGE, "Kettle Mining is a mining company."))]
    rows = evaluate_qa(engine, data, [4, 8])
    keys = [(r.method, r.rate) for r in rows]
    assert keys == [
        ("gmsa", 4),
        ("gmsa", 8),
        ("full_context", None),
        ("truncate", 4),
        ("truncate", 8),
        ("token_drop", 4),
        ("token_drop", 8),
        ("no_context", None),
    ]
    assert all(r.values["median_latency_s"] > 0 for r in rows)
    assert "token_drop" in format_table(rows)
    with pytest.raises(ValueError, match="unknown QA method"):
        evaluate_qa(engine, data, [4], ["magic"])
    assert set(QA_METHODS) == {m for m, _ in keys} | {"full_context_tuned"}


def test_full_context_tuned_reads_the_full_text_with_the_tuned_baseline_decoder(engine):
    data = [QARow("Where was Ada Lind born?", ("Varnholm",), (PASSAGE,))]
    with pytest.raises(ValueError, match="tuned_baseline"):
        evaluate_qa(engine, data, [4], ["full_context_tuned"])
    tuned = make_engine("llama", seed=3)
    tuned.model.set_decoder_overrides(
        {n: -p.detach() * 5 for n, p in tuned.model.backbone.named_parameters() if n.endswith("o_proj.weight")}
    )
    rows = evaluate_qa(engine, data, [4], tuned_baseline=tuned)
    assert [r.method for r in rows][:3] == ["gmsa", "full_context", "full_context_tuned"]
    prompt = f"{PASSAGE}\nQuestion: Where was Ada Lind born?\nAnswer:"
    expected = tuned.generate(prompt, decoder="keft", max_new_tokens=24, stop=["\n"])
    assert _answer_with(engine, "full_context_tuned", data[0], 4, tuned) == expected
    assert expected != tuned.generate(prompt, decoder="original", max_new_tokens=24, stop=["\n"])


def test_probe_margin_is_the_answer_likelihood_own_passages_add_over_another_rows(engine):
    other = "Kettle Mining is a mining company in Dalby."
    rows = [QARow("Where was Ada Lind born?", ("Varnholm",), (PASSAGE,)), QARow("What is it?", ("mining",), (other,))]
    (probe,) = evaluate_answer_likelihood(engine, rows, [4])

    def logp(passage: str, row: QARow) -> float:
        (soft,) = engine.compress([passage], rate=4)
        prompt = f"{engine.reference(soft)}\nQuestion: {row.question}\nAnswer:"
        return sum(engine.log_likelihood(prompt, f" {row.answers[0]}"))

    expected = [logp(PASSAGE, rows[0]) - logp(other, rows[0]), logp(other, rows[1]) - logp(PASSAGE, rows[1])]
    assert probe.scores == pytest.approx(expected, rel=1e-4)
    assert probe.values["wins"] == sum(m > 0 for m in expected) / 2
    assert probe.values["margin_mean"] == pytest.approx(sum(expected) / 2, rel=1e-4)
    assert probe.values["answer_logp"] == pytest.approx((logp(PASSAGE, rows[0]) + logp(other, rows[1])) / 2, rel=1e-4)
    (same,) = evaluate_answer_likelihood(engine, [rows[0], rows[0]], [4])  # nothing to read apart: no wins
    assert same.scores == pytest.approx([0, 0], abs=1e-4) and same.values["wins"] == 0
    with pytest.raises(ValueError, match="compares each row with another one: got 1 row"):
        evaluate_answer_likelihood(engine, rows[:1], [4])


def test_cli_probe_writes_each_rows_margin(engine, tmp_path, capsys):
    model = engine.save_pretrained(tmp_path / "model")
    data = tmp_path / "qa.jsonl"
    rows = [
        {"question": "Where?", "answers": ["Varnholm"], "passages": [PASSAGE]},
        {"question": "What?", "answers": ["mining"], "passages": ["Kettle Mining is a mining company."]},
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "probe.json"
    argv = ["eval", "probe", "--data", str(data), "--rates", "4,8", "--model", str(model), "--json", str(out)]
    assert main([*argv, "--no-progress"]) == 0
    payload = json.loads(out.read_text())
    assert [(r["method"], r["rate"]) for r in payload["rows"]] == [("gmsa", 4), ("gmsa", 8)]
    records = [QARow(r["question"], tuple(r["answers"]), tuple(r["passages"])) for r in rows]
    (expected,) = evaluate_answer_likelihood(engine, records, [8])
    assert payload["scores"][1] == {"method": "gmsa", "rate": 8, "scores": pytest.approx(expected.scores, rel=1e-4)}
    assert "margin_mean" in capsys.readouterr().out


def test_cli_writes_json_rows_and_plot(engine, tmp_path, capsys):
    model = engine.save_pretrained(tmp_path / "model")
    data = tmp_path / "qa.jsonl"
    data.write_text(json.dumps({"question": "Where?", "answers": ["Varnholm"], "passages": [PASSAGE]}) + "\n")
    out, plot = tmp_path / "qa.json", tmp_path / "qa.png"
    argv = ["eval", "qa", "--data", str(data), "--rates", "4", "--methods", "gmsa,truncate,no_context"]
    argv += ["--model", str(model), "--json", str(out), "--plot", str(plot), "--no-progress"]
    assert main(argv) == 0
    payload = json.loads(out.read_text())
    assert [(r["method"], r["rate"]) for r in payload["rows"]] == [("gmsa", 4), ("truncate", 4), ("no_context", None)]
    assert {"exact_match", "f1", "median_latency_s"} <= set(payload["rows"][0])
    # every method's answer is kept beside its question, so a score can be traced to the text behind it
    assert payload["references"] == [{"question": "Where?", "answers": ["Varnholm"]}]
    outputs = {(o["method"], o["rate"]): o["outputs"] for o in payload["outputs"]}
    row = QARow("Where?", ("Varnholm",), (PASSAGE,))
    assert outputs[("gmsa", 4)] == [_answer_with(engine, "gmsa", row, 4).strip()]
    assert outputs[("no_context", None)] == [_answer_with(engine, "no_context", row, 1).strip()]
    assert plot.stat().st_size > 1000
    assert "method" in capsys.readouterr().out


def test_exact_match_by_group_scores_each_kind_of_question_apart():
    rows = [QARow("q1", ("Kethport",), ("p",)), QARow("q2", ("pilot",), ("p",)), QARow("q3", ("Dalby",), ("p",))]
    results = [Row("gmsa", 4, {}, ["kethport.", "pilot", "Varn"]), Row("no_context", None, {}, ["x", "the pilot", "y"])]
    table = exact_match_by_group(results, rows, ["city", "job", "city"])
    assert table["gmsa 4x"] == {"city": {"exact_match": 0.5, "n": 2}, "job": {"exact_match": 1.0, "n": 1}}
    assert table["no_context"]["city"]["exact_match"] == 0.0 and table["no_context"]["job"]["exact_match"] == 1.0
    lines = format_groups(table).splitlines()
    assert lines[0].split() == ["group", "n", "gmsa", "4x", "no_context"]
    assert lines[1].split() == ["city", "2", "0.500", "0.000"]
    with pytest.raises(ValueError, match="one group label per row"):
        exact_match_by_group(results, rows, ["city", "job"])
    with pytest.raises(ValueError, match="2 answers for 3 rows"):
        exact_match_by_group([Row("gmsa", 4, {}, ["a", "b"])], rows, ["city", "job", "city"])


def test_cli_groups_exact_match_by_a_field_of_the_rows(engine, tmp_path, capsys):
    model = engine.save_pretrained(tmp_path / "model")
    data = tmp_path / "qa.jsonl"
    rows = [
        {"question": "Where?", "answers": ["Varnholm"], "passages": [PASSAGE], "type": "city"},
        {"question": "Job?", "answers": ["pilot"], "passages": [PASSAGE], "type": "job"},
        {"question": "Town?", "answers": ["Varnholm"], "passages": [PASSAGE], "type": "city"},
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "qa.json"
    argv = ["eval", "qa", "--data", str(data), "--methods", "no_context", "--model", str(model)]
    assert main([*argv, "--group-by", "type", "--limit", "2", "--json", str(out), "--no-progress"]) == 0
    payload = json.loads(out.read_text())
    assert payload["groups"]["field"] == "type"
    (answers,) = [o["outputs"] for o in payload["outputs"]]
    groups = payload["groups"]["exact_match"]["no_context"]
    assert {g: v["n"] for g, v in groups.items()} == {"city": 1, "job": 1}  # --limit 2 applies to the labels too
    assert groups["job"]["exact_match"] == exact_match(answers[1], ["pilot"])
    assert "exact match by type" in capsys.readouterr().out
    data.write_text(json.dumps(rows[0]) + "\n" + json.dumps({**rows[1], "type": None}) + "\n")
    with pytest.raises(DataError, match=r"qa.jsonl:2: field 'type' must be a string"):
        main([*argv, "--group-by", "type", "--no-progress"])


def test_cli_recon_with_baseline(engine, tmp_path):
    from gmsa_integrations import GMSAConfig

    model = engine.save_pretrained(tmp_path / "model")
    config = GMSAConfig(encoder_layers=2, lora_r=8, max_window_tokens=64, paradigm="memory-tokens", memory_tokens=16)
    icae = make_engine("llama", config)
    baseline = icae.save_pretrained(tmp_path / "icae")
    data = tmp_path / "ae.jsonl"
    data.write_text(json.dumps({"text": PASSAGE}) + "\n")
    out = tmp_path / "recon.json"
    argv = ["eval", "recon", "--data", str(data), "--rates", "4", "--model", str(model)]
    argv += ["--baseline", str(baseline), "--json", str(out), "--no-progress"]
    assert main(argv) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["method"] for r in rows] == ["gmsa", "icae"]
    assert all(r["bleu"] >= 0 and r["nll"] > 0 for r in rows)
    payload = json.loads(out.read_text())
    assert payload["references"] == [{"text": PASSAGE}]
    soft = engine.compress([PASSAGE], rate=4)
    budget = engine.count_tokens(PASSAGE) + 16
    restated = engine.generate(engine.config.ae_instruction, soft, max_new_tokens=budget).strip()
    assert payload["outputs"][0] == {"method": "gmsa", "rate": 4, "outputs": [restated]}
    assert main([*argv, "--no-generate"]) == 0
    payload = json.loads(out.read_text())
    assert all("bleu" not in r and r["nll"] > 0 for r in payload["rows"])
    assert payload["outputs"] == []  # nothing was generated
    assert main([*argv, "--no-generate", "--max-length", "8"]) == 0
    cut = engine.tokenizer.decode(engine.tokenizer(PASSAGE, add_special_tokens=False)["input_ids"][:8])
    assert json.loads(out.read_text())["references"] == [{"text": cut}]  # the passage as it was scored


def test_cli_rejects_unknown_methods(capsys):
    with pytest.raises(SystemExit):
        main(["eval", "qa", "--data", "x.jsonl", "--methods", "gmsa,magic"])
    assert "magic" in capsys.readouterr().err
