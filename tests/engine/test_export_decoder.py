"""The soft-token decoder exported for serving engines: plain `transformers` reproduces the engine."""

import pytest
import torch
from transformers import AutoModelForCausalLM

from gmsa_integrations.cli import main as cli_main
from tests.conftest import load_default_engine, make_engine

TEXTS = ["Mira Solen was born in Kethport in 1975.", "Orvan Tools is headquartered in Dalby."]


def _hf_greedy(directory, engine, prompt, soft_prompts, max_new_tokens):
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()
    embeds = engine.prompt_embeds(prompt, soft_prompts)
    with torch.no_grad():
        out = model.generate(
            inputs_embeds=embeds[None],
            attention_mask=torch.ones(1, embeds.shape[0], dtype=torch.long),
            max_new_tokens=max_new_tokens,
            do_sample=False,
        )
    ids = out[0].tolist()
    stops = set(model.generation_config.eos_token_id or [])
    while ids and ids[-1] in stops:
        ids.pop()
    return ids


def _engine_greedy_ids(engine, prompt, soft_prompts, max_new_tokens):
    completion = engine.complete(prompt, soft_prompts=soft_prompts, max_new_tokens=max_new_tokens)
    return completion, engine.tokenizer(completion.text, add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize("decoder", ["keft", "original"])
def test_exported_tiny_qwen2_decoder_reproduces_greedy_generation_token_for_token(tmp_path, decoder):
    engine = make_engine("qwen2")
    name = "model.layers.1.self_attn.q_proj.weight"
    engine.model.set_decoder_overrides({name: engine.model.backbone.get_parameter(name) * 0.5})
    sps = engine.compress(TEXTS)
    prompt = "\nQuestion: Where was Mira born?\nAnswer:"
    engine.export_decoder(tmp_path / "decoder", decoder=decoder)

    assert not [p for p in (tmp_path / "decoder").iterdir() if p.suffix in (".bin", ".pt", ".pkl")]
    completion = engine.complete(prompt, soft_prompts=sps, max_new_tokens=16, decoder=decoder)
    hf_ids = _hf_greedy(tmp_path / "decoder", engine, prompt, sps, 16)
    assert engine.tokenizer.decode(hf_ids, skip_special_tokens=True) == completion.text
    assert len(hf_ids) == completion.output_tokens


def test_prompt_embeds_are_the_soft_tokens_then_the_prompt_text():
    engine = make_engine()
    sps = engine.compress(TEXTS)
    embeds = engine.prompt_embeds("Where?", sps)
    ids = engine.tokenizer("Where?", add_special_tokens=False)["input_ids"]
    soft = torch.cat([sp.embeddings for sp in sps])
    assert embeds.shape == (soft.shape[0] + len(ids), engine.model.hidden_size)
    assert torch.equal(embeds[: soft.shape[0]], soft)
    assert torch.equal(embeds[soft.shape[0] :], engine.model.embed_tokens(torch.tensor(ids)).detach())
    with pytest.raises(ValueError, match="decoder"):
        engine.export_decoder("unused", decoder="both")


def test_default_model_decoder_exported_by_the_cli_matches_the_engine(tmp_path, capsys):
    engine = load_default_engine()
    assert (
        cli_main(["export", "decoder", "--model", "default", "--out", str(tmp_path / "dec"), "--dtype", "float32"]) == 0
    )
    assert "decoder" in capsys.readouterr().out
    sps = engine.compress(TEXTS, rate=4)
    prompt = "\nQuestion: Where was Mira Solen born?\nAnswer:"
    completion = engine.complete(prompt, soft_prompts=sps, max_new_tokens=12)
    hf_ids = _hf_greedy(tmp_path / "dec", engine, prompt, sps, 12)
    assert engine.tokenizer.decode(hf_ids, skip_special_tokens=True) == completion.text
