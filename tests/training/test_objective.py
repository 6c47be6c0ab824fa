"""The training batch layout, and that training compresses exactly as inference does."""

import pytest
import torch

from gmsa_integrations.data.records import AERow, QARow
from gmsa_integrations.training.objective import GMSACollator, GMSAObjective
from tests.conftest import make_engine


def _last_target_tokens(batch):
    return [int(batch["target_ids"][i, n - 1]) for i, n in enumerate(batch["target_lengths"].tolist())]


def test_every_target_ends_with_the_engines_eos_the_token_generation_stops_at():
    engine = make_engine()
    rows = [(0, AERow("Mira Solen was born in Kethport.")), (1, QARow("Where?", ["Kethport"], ["Mira was born."]))]
    default = GMSACollator(engine.tokenizer, rates=[4], eos_token_id=engine.eos_token_id)(rows)
    assert _last_target_tokens(default) == [engine.tokenizer.eos_token_id] * 2
    with pytest.raises(ValueError, match="eos_token_id"):
        GMSACollator(engine.tokenizer, rates=[4])

    engine.eos_token_id = 7  # e.g. a checkpoint trained where the tokenizer declared another EOS
    collator = GMSACollator(engine.tokenizer, rates=[4], eos_token_id=engine.eos_token_id)
    assert _last_target_tokens(collator(rows)) == [7, 7]
    assert 7 in engine.stop_token_ids


@pytest.mark.parametrize("arch", ["llama", "qwen3"])
@pytest.mark.parametrize("rate", [3, 8])
def test_training_sees_the_soft_tokens_that_inference_computes(arch, rate):
    # a passage longer than the 64-token encoder window, one that is not a multiple of the rate, a short one
    texts = [
        "Mira Solen was born in Kethport on 4 March 1969 and studied optics at the Dalby institute. " * 2,
        "Orvan Tools is based in Dalby.",
        "Hi",
    ]
    engine = make_engine(arch)
    collator = GMSACollator(engine.tokenizer, rates=[rate], max_length=1000, eos_token_id=engine.eos_token_id)
    batch = collator([(i, AERow(t)) for i, t in enumerate(texts)])
    objective = GMSAObjective(engine.model, train_compressor=True, window_tokens=engine.window_tokens)
    with torch.no_grad():
        trained = objective.passage_soft_tokens(batch["passage_ids"], batch["passage_lengths"], batch["passage_rates"])
    inferred = engine.compress(texts, rate=rate)
    assert len(engine.tokenizer(texts[0], add_special_tokens=False)["input_ids"]) > engine.window_tokens
    for train_tokens, soft_prompt in zip(trained, inferred, strict=True):
        assert train_tokens.shape == soft_prompt.embeddings.shape
        torch.testing.assert_close(train_tokens, soft_prompt.embeddings, atol=1e-5, rtol=1e-4)


def test_loss_per_sample_weighs_a_short_answer_as_much_as_a_long_restatement():
    engine = make_engine()
    engine.model.eval()  # no dropout: each row's loss alone must match its share of the batch
    rows = [
        (0, AERow("Mira Solen was born in Kethport on 4 March 1969 and studied optics at the Dalby institute.")),
        (1, QARow("Where was Mira born?", ["Kethport"], ["Mira Solen was born in Kethport."])),
    ]
    collator = GMSACollator(engine.tokenizer, rates=[4], eos_token_id=engine.eos_token_id)
    batch = collator(rows)
    assert batch["target_lengths"][0] > 3 * batch["target_lengths"][1]

    def loss(per: str, sample_rows) -> torch.Tensor:
        objective = GMSAObjective(engine.model, train_compressor=True, window_tokens=engine.window_tokens, loss_per=per)
        with torch.no_grad():
            return objective(**collator(sample_rows))["loss"]

    alone = [loss("token", [row]) for row in rows]
    torch.testing.assert_close(loss("sample", rows), (alone[0] + alone[1]) / 2, atol=1e-5, rtol=1e-4)
    by_token = (alone[0] * batch["target_lengths"][0] + alone[1] * batch["target_lengths"][1]) / batch[
        "target_lengths"
    ].sum()
    torch.testing.assert_close(loss("token", rows), by_token.float(), atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="loss_per"):
        GMSAObjective(engine.model, train_compressor=True, window_tokens=engine.window_tokens, loss_per="row")
