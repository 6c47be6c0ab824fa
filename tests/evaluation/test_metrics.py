import pytest

from gmsa_integrations.evaluation import bleu, exact_match, f1, normalize_answer, prefix_match, rouge_l


def test_bleu_is_on_a_zero_to_one_scale():
    refs = ["Ada Lind was born in Varnholm on 3 May 1950 and works for Kettle Mining."]
    assert bleu(refs, refs) == pytest.approx(1.0)
    assert bleu(["completely unrelated words here"], refs) < 0.05


def test_bleu_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="2 hypotheses but 1 references"):
        bleu(["a", "b"], ["a"])


def test_rouge_l_uses_longest_common_subsequence():
    assert rouge_l("a b c d", "a b c d") == 1.0
    # LCS "a c d" = 3 of 4 words each side
    assert rouge_l("a x c d", "a b c d") == pytest.approx(0.75)
    assert rouge_l("", "a") == 0.0


def test_prefix_match_stops_at_first_difference():
    assert prefix_match("a b x d", "a b c d") == 0.5
    assert prefix_match("a b c d e", "a b c d") == 1.0


def test_squad_normalisation_ignores_case_articles_and_punctuation():
    assert normalize_answer("The  Sarso River.") == "sarso river"
    assert exact_match("the Sarso river", ["Sarso River"]) == 1.0
    assert exact_match("Sarso", ["Sarso River"]) == 0.0
    assert f1("Sarso", ["Sarso River"]) == pytest.approx(2 / 3)
    assert f1("", ["x"]) == 0.0
