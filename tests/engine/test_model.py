import dataclasses

import torch

from gmsa_integrations.engine.model import base_model_of
from tests.conftest import TINY, make_engine


def test_lsa_is_initialised_from_decoder_layer_zero_and_final_norm(engine):
    base = base_model_of(engine.model.backbone)
    lsa = engine.model.lsa
    assert len(lsa.layers) == 1
    for (name, p_lsa), (_, p_dec) in zip(lsa.layers[0].state_dict().items(), base.layers[0].state_dict().items()):
        torch.testing.assert_close(p_lsa, p_dec, msg=name)
        assert p_lsa.data_ptr() != p_dec.data_ptr()  # a copy, so training LSA leaves the decoder alone
    # the final norm's copy, rescaled once so soft tokens start at the input embeddings' norm
    scale = (lsa.norm.weight / base.norm.weight).detach()
    torch.testing.assert_close(scale, torch.full_like(scale, float(scale[0])))
    soft = engine.compress(["Ada Lind was born in Varnholm and works at Orvan Tools."], rate=4)[0].embeddings
    embedding_norm = base.embed_tokens.weight.norm(dim=-1).mean()
    assert 0.5 < float(soft.norm(dim=-1).mean() / embedding_norm) < 2.0


def test_paper_initialisation_keeps_the_final_norm_as_it_is():
    engine = make_engine("llama", config=dataclasses.replace(TINY, lsa_output_scale="final-norm"))
    torch.testing.assert_close(engine.model.lsa.norm.weight, base_model_of(engine.model.backbone).norm.weight)


def test_encoder_is_the_first_k_backbone_layers_with_lora(engine):
    base = base_model_of(engine.model.backbone)
    assert len(engine.model.encoder.layers) == engine.config.encoder_layers
    q_enc = engine.model.encoder.layers[1].self_attn.q_proj
    torch.testing.assert_close(q_enc.base_layer.weight, base.layers[1].self_attn.q_proj.weight)
    lora_names = [n for n, _ in engine.model.encoder.named_parameters() if "lora_" in n]
    for proj in ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"):
        assert any(proj in n for n in lora_names), proj


def test_only_lora_and_lsa_are_trainable_and_decoder_is_frozen(engine):
    trainable = {n for n, p in engine.model.named_parameters() if p.requires_grad}
    assert trainable
    assert all(n.startswith("lsa.") or "lora_" in n for n in trainable)
    assert not any(p.requires_grad for p in engine.model.backbone.parameters())


def test_compress_and_generate_leave_decoder_parameters_untouched():
    engine = make_engine("llama")
    before = {k: v.clone() for k, v in engine.model.backbone.state_dict().items()}
    sps = engine.compress(["The river Olm flows north."], rate=4)
    engine.generate("Where?", soft_prompts=sps, max_new_tokens=4)
    engine.generate("Where?", max_new_tokens=4)
    for name, tensor in engine.model.backbone.state_dict().items():
        assert torch.equal(tensor, before[name]), name


def test_decoder_overrides_are_used_for_soft_prompts_and_original_for_plain_text():
    engine = make_engine("llama")
    name = "model.layers.0.self_attn.q_proj.weight"
    original = engine.model.backbone.get_parameter(name).detach().clone()
    engine.model.set_decoder_overrides({name: torch.zeros_like(original)})
    assert torch.count_nonzero(engine.model.backbone.get_parameter(name)) == 0
    with engine.model.original_decoder():
        torch.testing.assert_close(engine.model.backbone.get_parameter(name), original)
    assert torch.count_nonzero(engine.model.backbone.get_parameter(name)) == 0
    engine.model.restore_original_decoder()
    torch.testing.assert_close(engine.model.backbone.get_parameter(name), original)


def test_encoder_lora_merge_is_exact_to_undo_and_keeps_fingerprint_and_soft_tokens():
    engine = make_engine("qwen2")
    fingerprint = engine.fingerprint
    ids = engine.tokenizer("A passage about the river Anwe.", add_special_tokens=False)["input_ids"]
    with torch.no_grad():  # the unmerged model, read directly
        pooled, counts = engine.model.encode_and_merge(torch.tensor([ids]), torch.tensor([len(ids)]), 4)
        unmerged = engine.model.align(pooled, counts)[0]
    assert not engine.model.encoder_lora_merged
    merged = engine.compress(["A passage about the river Anwe."])[0].embeddings
    assert engine.model.encoder_lora_merged
    torch.testing.assert_close(merged, unmerged, atol=1e-5, rtol=1e-4)
    assert engine.refresh_fingerprint() == fingerprint
    engine.model.unmerge_encoder_lora()
    assert not engine.model.encoder_lora_merged
    base = base_model_of(engine.model.backbone)
    assert torch.equal(engine.model.encoder.layers[0].mlp.up_proj.base_layer.weight, base.layers[0].mlp.up_proj.weight)
