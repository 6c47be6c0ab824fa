"""The training batch layout: what each target ends with."""

from gmsa_integrations.records import AERow, QARow
from gmsa_integrations.training.objective import GMSACollator
from tests.conftest import make_engine


def _last_target_tokens(batch):
    return [int(batch["target_ids"][i, n - 1]) for i, n in enumerate(batch["target_lengths"].tolist())]


def test_every_target_ends_with_the_engines_eos_the_token_generation_stops_at():
    engine = make_engine()
    rows = [(0, AERow("Mira Solen was born in Kethport.")), (1, QARow("Where?", ["Kethport"], ["Mira was born."]))]
    default = GMSACollator(engine.tokenizer, rates=[4], window_tokens=64)(rows)
    assert _last_target_tokens(default) == [engine.tokenizer.eos_token_id] * 2

    engine.eos_token_id = 7  # e.g. a checkpoint trained where the tokenizer declared another EOS
    collator = GMSACollator(engine.tokenizer, rates=[4], window_tokens=64, eos_token_id=engine.eos_token_id)
    assert _last_target_tokens(collator(rows)) == [7, 7]
    assert 7 in engine.stop_token_ids
