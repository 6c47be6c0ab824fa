import pytest
import torch

from gmsa_integrations import SoftPrompt, SoftTokenStore
from tests.conftest import make_engine

PASSAGES = ["Mira Solen was born in Kethport.", "Orvan Tools is based in Dalby."]


def test_reference_in_a_template_equals_passing_soft_prompts():
    engine = make_engine()
    sps = engine.compress(PASSAGES)
    refs = [engine.reference(sp) for sp in sps]
    prompt = "".join(refs) + "Where was Mira born?"
    assert engine.resolve(prompt) == [*sps, "Where was Mira born?"]
    direct = engine.complete("Where was Mira born?", soft_prompts=sps, max_new_tokens=10)
    assert engine.complete(prompt, max_new_tokens=10) == direct


def test_references_are_resolved_in_place_between_text():
    engine = make_engine()
    sps = engine.compress(PASSAGES)
    prompt = f"Context:\n{engine.reference(sps[0])}\n\n{engine.reference(sps[1])}\nQuestion: where?"
    segments = engine.resolve(prompt)
    assert segments == ["Context:\n", sps[0], "\n\n", sps[1], "\nQuestion: where?"]
    out = engine.complete(prompt, max_new_tokens=4)
    text_tokens = sum(len(engine.tokenizer(s, add_special_tokens=False)["input_ids"]) for s in segments[::2])
    assert out.soft_tokens == sps[0].num_tokens + sps[1].num_tokens
    assert out.input_tokens == out.soft_tokens + text_tokens


def test_unknown_foreign_and_malformed_references_are_errors():
    engine, other = make_engine(seed=0), make_engine(seed=4)
    foreign = other.reference(other.compress(PASSAGES[:1])[0])
    with pytest.raises(ValueError, match="another GMSA engine"):
        engine.generate(f"{foreign} where?")
    unknown = f"<gmsa:{engine.fingerprint[:8]}:{'0' * 64}>"
    with pytest.raises(ValueError, match="unknown soft-token reference"):
        engine.generate(f"{unknown} where?")
    with pytest.raises(ValueError, match="malformed"):
        engine.resolve("<gmsa:123> where?")


def test_reference_falls_back_to_the_store_after_eviction(tmp_path):
    engine = make_engine(store=SoftTokenStore(tmp_path / "store"))
    sp = engine.compress(PASSAGES[:1])[0]
    ref = engine.reference(sp)
    engine.references._entries.clear()
    engine.store.clear_memory()
    resolved = engine.resolve(ref)[0]
    assert torch.equal(resolved.embeddings, sp.embeddings) and resolved.key == sp.key


def test_hand_made_soft_prompt_gets_a_content_key():
    engine = make_engine()
    sp = SoftPrompt(torch.randn(3, engine.model.hidden_size), source_tokens=12, rate=4)
    ref = engine.reference(sp)
    assert torch.equal(engine.resolve(ref)[0].embeddings, sp.embeddings)
