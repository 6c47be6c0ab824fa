import pytest

from gmsa_integrations.data.links import TitleLinks

TITLES = {"p1": "Ada Lind", "c1": "Varn Tools", "c2": "Varn", "t1": "Kethport", "x": None, "y": ""}


def test_mentions_are_whole_words_longest_title_first_in_order_of_first_mention():
    links = TitleLinks(TITLES)
    text = "Ada Lind works for Varn Tools; Kethportville is elsewhere, and Ada Lind was born in Kethport."
    assert links.mentioned(text) == ["p1", "c1", "t1"]  # not "Varn" inside "Varn Tools", not "Kethportville"
    assert links.mentioned("Varn, alone.") == ["c2"]
    assert links.mentioned("ada lind") == []  # titles are names: case matters


def test_expand_follows_the_top_hits_skips_the_hits_themselves_and_caps_the_links():
    links = TitleLinks(TITLES)
    hits = [("p1", "Ada Lind works for Varn Tools and was born in Kethport."), ("c2", "Varn names Ada Lind.")]
    assert links.expand(hits) == ["c1", "t1"]
    assert links.expand(hits, max_linked=1) == ["c1"]
    assert links.expand(hits, follow=0) == []
    assert links.expand([("c1", "Varn Tools was founded by Ada Lind.")], max_linked=5) == ["p1"]


def test_passages_sharing_a_title_are_all_linked_and_untitled_corpora_link_nothing():
    assert TitleLinks({"a": "Saby", "b": "Saby"}).mentioned("born in Saby") == ["a", "b"]
    assert TitleLinks({"a": None}).expand([("z", "born in Saby")]) == []
    assert len(TitleLinks(TITLES)) == 4


def test_bad_input_is_refused_with_a_message_that_names_it():
    with pytest.raises(TypeError, match="passage 'p1'"):
        TitleLinks({"p1": 3})
    with pytest.raises(TypeError, match="map passage ids"):
        TitleLinks(["Ada Lind"])
    with pytest.raises(ValueError, match="max_linked"):
        TitleLinks(TITLES).expand([], max_linked=-1)
    with pytest.raises(ValueError, match="follow"):
        TitleLinks(TITLES).expand([], follow=True)
    with pytest.raises(TypeError, match="text must be a string"):
        TitleLinks(TITLES).mentioned(None)
