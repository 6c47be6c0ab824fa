import threading

import pytest
import torch

from gmsa_integrations import GMSAConfig, GMSAEngine, SoftPrompt
from tests.conftest import TINY, make_engine

PASSAGES = [
    "Mira Solen was born in Kethport in 1971 and studied marine biology.",
    "Kethport lies on the river Anwe.",
    "Orvan Tools was founded in 1958 by Tamsin Reil; its headquarters are in Dalby, a town of 41,000 people.",
]


@pytest.mark.parametrize("rate", [1, 3, 4, 8])
def test_compress_returns_ceil_l_over_r_soft_tokens(engine, rate):
    sps = engine.compress(PASSAGES, rate=rate)
    assert len(sps) == len(PASSAGES)
    for text, sp in zip(PASSAGES, sps):
        length = len(engine.tokenizer(text, add_special_tokens=False)["input_ids"])
        assert sp.source_tokens == length == engine.count_tokens(text)
        assert sp.num_tokens == -(-length // rate)
        assert sp.embeddings.shape == (sp.num_tokens, engine.model.hidden_size)
        assert sp.rate == rate and sp.fingerprint == engine.fingerprint


def test_compress_is_group_merging_then_lsa(llama_engine):
    engine = llama_engine
    ids = engine.tokenizer(PASSAGES[1], add_special_tokens=False)["input_ids"]
    assert len(ids) < engine.window_tokens
    with torch.no_grad():
        hidden = engine.model.encoder(input_ids=torch.tensor([ids])).last_hidden_state[0]
        pooled = torch.stack([hidden[s : s + 4].mean(0) for s in range(0, len(ids), 4)])
        expected = engine.model.lsa(inputs_embeds=pooled[None]).last_hidden_state[0]
    torch.testing.assert_close(engine.compress([PASSAGES[1]], rate=4)[0].embeddings, expected)


def test_empty_text_gives_a_soft_prompt_with_zero_tokens(engine):
    sp = engine.compress(["", PASSAGES[1]], rate=4)[0]
    assert sp.num_tokens == 0 and sp.source_tokens == 0
    assert engine.compress([], rate=4) == []


def test_batched_compress_equals_one_by_one(engine):
    batched = engine.compress(PASSAGES, rate=4, batch_size=8)
    for text, sp in zip(PASSAGES, batched):
        single = engine.compress([text], rate=4)[0]
        torch.testing.assert_close(sp.embeddings, single.embeddings, atol=1e-5, rtol=1e-4)


def test_long_text_is_windowed_in_rate_aligned_chunks(llama_engine):
    engine = llama_engine  # max_window_tokens=64 -> windows of 63 tokens at rate 3
    text = "".join(PASSAGES) * 3
    ids = engine.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) > 3 * engine.window_tokens
    sp = engine.compress([text], rate=3)[0]
    assert sp.num_tokens == -(-len(ids) // 3)
    with torch.no_grad():
        chunks = [ids[s : s + 63] for s in range(0, len(ids), 63)]
        pooled = []
        for chunk in chunks:
            hidden = engine.model.encoder(input_ids=torch.tensor([chunk])).last_hidden_state[0]
            pooled += [hidden[s : s + 3].mean(0) for s in range(0, len(chunk), 3)]
        expected = engine.model.lsa(inputs_embeds=torch.stack(pooled)[None]).last_hidden_state[0]
    torch.testing.assert_close(sp.embeddings, expected, atol=1e-5, rtol=1e-4)


def test_generate_reads_soft_tokens_then_prompt(engine):
    sps = engine.compress(PASSAGES[:2], rate=4)
    out = engine.complete("Where was Mira Solen born?", soft_prompts=sps, max_new_tokens=8)
    prompt_len = len(engine.tokenizer("Where was Mira Solen born?", add_special_tokens=False)["input_ids"])
    assert out.soft_tokens == sum(sp.num_tokens for sp in sps)
    assert out.input_tokens == out.soft_tokens + prompt_len
    assert out.output_tokens <= 8 and out.finish_reason in ("stop", "length")
    assert isinstance(engine.generate("Where?", soft_prompts=sps, max_new_tokens=8), str)


def test_soft_prompts_change_the_answer(llama_engine):
    a = llama_engine.compress([PASSAGES[0]])
    b = llama_engine.compress([PASSAGES[2]])
    logits = [llama_engine.complete("Who?", soft_prompts=s, max_new_tokens=12).text for s in (a, b)]
    assert logits[0] != logits[1]


def test_batched_generation_equals_one_by_one(engine):
    sps = engine.compress(PASSAGES, rate=4)
    prompts = ["Where?", "When was Orvan Tools founded, and by whom?", "Q"]
    soft_lists = [sps[:1], sps[1:], []]
    batched = engine.complete_batch(prompts, soft_lists, max_new_tokens=10)
    for prompt, soft, result in zip(prompts, soft_lists, batched):
        assert engine.complete(prompt, soft or None, max_new_tokens=10) == result


def test_stream_joins_to_generate_and_stop_strings_cut(llama_engine):
    sps = llama_engine.compress(PASSAGES[:1])
    full = llama_engine.generate("Who?", soft_prompts=sps, max_new_tokens=20)
    assert "".join(llama_engine.stream("Who?", soft_prompts=sps, max_new_tokens=20)) == full
    stop = full[3:5]
    cut = llama_engine.complete("Who?", soft_prompts=sps, max_new_tokens=20, stop=[stop])
    assert cut.text == full[: full.find(stop)] and cut.finish_reason == "stop"
    assert "".join(llama_engine.stream("Who?", soft_prompts=sps, max_new_tokens=20, stop=[stop])) == cut.text


def test_sampling_is_reproducible_with_a_seed_and_penalty_changes_greedy_output(llama_engine):
    kwargs = dict(max_new_tokens=16, temperature=0.9, top_p=0.9, seed=7)
    assert llama_engine.generate("Hi", **kwargs) == llama_engine.generate("Hi", **kwargs)
    plain = llama_engine.generate("Hi", max_new_tokens=30)
    penalised = llama_engine.generate("Hi", max_new_tokens=30, repetition_penalty=100.0)
    assert len(set(penalised)) >= len(set(plain))


def test_concurrent_threads_match_sequential_results(llama_engine):
    engine = llama_engine
    engine.model.set_decoder_overrides(
        {
            "model.layers.0.self_attn.q_proj.weight": engine.model.backbone.get_parameter(
                "model.layers.0.self_attn.q_proj.weight"
            )
            * 0.5
        }
    )
    jobs = [("Where?", PASSAGES[i % 3], i % 2 == 0) for i in range(8)]

    def run(prompt, passage, use_soft):
        sps = engine.compress([passage]) if use_soft else None
        return engine.generate(prompt, soft_prompts=sps, max_new_tokens=12)

    sequential = [run(*job) for job in jobs]
    results: list = [None] * len(jobs)

    def worker(i):
        results[i] = run(*jobs[i])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == sequential


def test_bf16_engine_compresses_and_generates():
    engine = make_engine("qwen2", dtype=torch.bfloat16)
    sp = engine.compress([PASSAGES[0]])[0]
    assert sp.embeddings.dtype == torch.bfloat16
    assert isinstance(engine.generate("Q", soft_prompts=[sp], max_new_tokens=4), str)


# ------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("rate", [0, -4])
def test_non_positive_rate_is_a_value_error(llama_engine, rate):
    with pytest.raises(ValueError, match="rate"):
        llama_engine.compress(PASSAGES, rate=rate)


@pytest.mark.parametrize("rate", [2.5, "4", True])
def test_non_int_rate_is_a_type_error(llama_engine, rate):
    with pytest.raises(TypeError, match="rate"):
        llama_engine.compress(PASSAGES, rate=rate)


@pytest.mark.parametrize("texts", [None, "one string", 42, ["ok", None], ["ok", 3]])
def test_texts_must_be_a_list_of_str(llama_engine, texts):
    with pytest.raises(TypeError, match="texts"):
        llama_engine.compress(texts)


def test_generation_rejects_bad_prompts_and_soft_prompts(llama_engine):
    with pytest.raises(TypeError, match="prompt"):
        llama_engine.generate(None)
    with pytest.raises(TypeError, match="SoftPrompt"):
        llama_engine.generate("q", soft_prompts=["text"])
    with pytest.raises(TypeError, match="soft_prompts"):
        llama_engine.generate("q", soft_prompts=llama_engine.compress(["x"])[0])
    with pytest.raises(ValueError, match="max_new_tokens"):
        llama_engine.generate("q", max_new_tokens=-1)
    with pytest.raises(ValueError, match="temperature"):
        llama_engine.generate("q", temperature=-1)


def test_soft_prompt_from_another_engine_is_refused(llama_engine):
    other = make_engine("llama", seed=3)
    sp = other.compress([PASSAGES[0]])[0]
    with pytest.raises(ValueError, match="another GMSA engine"):
        llama_engine.generate("q", soft_prompts=[sp])
    wrong_width = SoftPrompt(torch.zeros(2, 7), source_tokens=8, rate=4)
    with pytest.raises(ValueError, match="shape"):
        llama_engine.generate("q", soft_prompts=[wrong_width])


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="encoder_layers"):
        GMSAConfig(encoder_layers=0)
    with pytest.raises(TypeError, match="lora_r"):
        GMSAConfig(lora_r=1.5)
    with pytest.raises(ValueError, match="encoder_layers=9"):
        make_engine("llama", config=GMSAConfig(encoder_layers=9, lora_r=4))
    with pytest.raises(TypeError, match="tokenizer"):
        GMSAEngine.from_backbone(make_engine().model.backbone, None, TINY)
    with pytest.raises(TypeError, match="model_or_path"):
        GMSAEngine.from_backbone(42, None, TINY)


def test_compress_ranked_spends_a_budget_on_the_best_passages(llama_engine):
    texts = ["a" * 40, "b" * 40, "c" * 40]
    sps = llama_engine.compress_ranked(texts, [0.9, 0.5, 0.1], 4, target_tokens=25)
    assert [sp.rate for sp in sps] == [4, 4, 8]
    assert sum(sp.num_tokens for sp in sps) <= 25
    unlimited = llama_engine.compress_ranked(texts, [0.9, 0.5, 0.1], 4)
    assert [sp.rate for sp in unlimited] == [4, 4, 4]
    with pytest.raises(ValueError, match="scores"):
        llama_engine.compress_ranked(texts, [1.0], 4)
    with pytest.raises(ValueError, match="target_tokens"):
        llama_engine.compress_ranked(texts, [1, 2, 3], 4, target_tokens=0)


def test_batch_size_must_be_a_positive_int(llama_engine):
    with pytest.raises(ValueError, match="batch_size"):
        llama_engine.compress(PASSAGES, batch_size=0)


def test_kv_cache_reserves_only_the_new_tokens_beyond_the_prompt():
    from gmsa_integrations.engine.decoding import _ReservedLayer

    layer = _ReservedLayer(reserve=4)
    keys = torch.randn(1, 2, 100, 8)
    out_k, _ = layer.update(keys, keys.clone())
    assert layer._k.shape[-2] == 104 and torch.equal(out_k, keys)
    for _ in range(6):  # two more than reserved: grows, keeps every state
        step = torch.randn(1, 2, 1, 8)
        out_k, _ = layer.update(step, step.clone())
    assert out_k.shape[-2] == 106 and torch.equal(out_k[..., :100, :], keys) and torch.equal(out_k[..., -1:, :], step)


def test_log_likelihood_is_the_distribution_generation_samples_from(llama_engine):
    """Over every one-character continuation the probabilities sum to 1, and greedy generation picks the likeliest."""
    engine = llama_engine
    soft = engine.compress(PASSAGES[:1], rate=4)
    vocab = [t for t, i in engine.tokenizer.get_vocab().items() if i > 3]  # every character; 0-3 are special
    scores = {t: engine.log_likelihood("Who?", t, soft)[0] for t in vocab}
    special = engine.log_likelihood("Who?", "</s>", soft)  # a special token's text is that one token
    assert float(torch.tensor([*scores.values(), *special]).exp().sum()) > 0.9  # pad, BOS and unk hold the rest
    assert float(torch.tensor(list(scores.values())).exp().sum()) <= 1 + 1e-4
    greedy = engine.generate("Who?", soft, max_new_tokens=1, ignore_eos=True)
    assert scores[greedy] == max(scores.values())


def test_log_likelihood_scores_every_token_teacher_forced(llama_engine):
    engine = llama_engine
    soft = engine.compress(PASSAGES[:1], rate=4)
    greedy = engine.generate("Who?", soft, max_new_tokens=6, ignore_eos=True)
    log_probs = engine.log_likelihood("Who?", greedy, soft)
    assert len(log_probs) == engine.count_tokens(greedy) and all(lp <= 0 for lp in log_probs)
    # a prefix scores the same tokens the same way: position t only sees what came before it
    assert engine.log_likelihood("Who?", greedy[:3], soft) == pytest.approx(log_probs[:3], abs=1e-5)


def test_log_likelihood_reads_with_the_decoder_generation_would_use(llama_engine):
    engine = llama_engine
    name = "model.layers.0.self_attn.q_proj.weight"
    engine.model.set_decoder_overrides({name: engine.model.backbone.get_parameter(name).detach() * 3})
    soft = engine.compress(PASSAGES[:1], rate=4)
    auto = engine.log_likelihood("Who?", "Mira", soft)
    assert auto == engine.log_likelihood("Who?", "Mira", soft, decoder="keft")
    assert auto != pytest.approx(engine.log_likelihood("Who?", "Mira", soft, decoder="original"))
    with pytest.raises(ValueError, match="no tokens"):
        engine.log_likelihood("Who?", "", soft)
