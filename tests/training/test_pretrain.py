import json

from gmsa_integrations import GMSAConfig, GMSAEngine
from gmsa_integrations.data.synth import generate
from gmsa_integrations.training.pretrain import PretrainConfig, pretrain_backbone, train_tokenizer


def test_tokenizer_round_trips_any_text():
    tokenizer = train_tokenizer(["Mira Solen was born in Kethport.", "Orvan Tools is in Dalby."] * 20, 300)
    for text in ["Mira Solen was born in Kethport.", "unseen wörds & symbols: 42%"]:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert tokenizer.decode(ids) == text
    assert tokenizer("x")["input_ids"][0] == tokenizer.bos_token_id == 1
    assert tokenizer.eos_token_id == 2 and tokenizer.pad_token_id == 0


def test_pretrained_backbone_loads_as_a_gmsa_backbone(tmp_path):
    generate(tmp_path / "data", seed=0, train_worlds=1, scale=0.1)
    (tmp_path / "backbone").mkdir()
    (tmp_path / "backbone" / "log.jsonl").write_text('{"step": 4, "loss": 9.9}\n')  # an earlier run's log
    out = pretrain_backbone(
        PretrainConfig(
            ae_data=str(tmp_path / "data" / "ae_train.jsonl"),
            qa_data=str(tmp_path / "data" / "qa_train.jsonl"),
            output_dir=str(tmp_path / "backbone"),
            vocab_size=400,
            hidden=32,
            layers=2,
            heads=2,
            intermediate=64,
            max_steps=6,
            batch_size=4,
            logging_steps=2,
            warmup_steps=1,
            show_progress=False,
        )
    )
    losses = [json.loads(line)["loss"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert len(losses) == 3 and losses[-1] < losses[0]
    engine = GMSAEngine.from_backbone(str(out), config=GMSAConfig(encoder_layers=1, lora_r=4))
    sp = engine.compress(["Mira Solen was born in Kethport."])[0]
    assert sp.num_tokens == -(-engine.count_tokens("Mira Solen was born in Kethport.") // 4)
