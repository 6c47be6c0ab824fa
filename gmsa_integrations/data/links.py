"""Title links: a corpus's passages point at each other wherever one names another's title.

A two-hop question ("What industry is Ada Lind's employer in?") names only the first passage's entity; the
answer sits in the passage about the employer, which the question never names, so retrieval by the question
alone cannot reach it. The first passage names it ("Ada Lind works for Varn Tools"); when passages carry
titles, that mention is a hyperlink, and following it is the second hop (as HotpotQA-style systems follow
Wikipedia's links). The adapters' ``TitleLinkRetriever`` classes add the linked passages to what a
retriever found.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence


class TitleLinks:
    """Which passages a text mentions by title.

    Args:
        titles: passage id -> title. A title is matched as whole words and case-sensitively, longest first
            (so "Varn Tools" wins over "Varn"); passages without a title (``None`` or empty) are never linked.

    Example:
        >>> links = TitleLinks({"p1": "Ada Lind", "c1": "Varn Tools", "t1": "Kethport"})
        >>> links.mentioned("Ada Lind works for Varn Tools, not in Kethportville.")
        ['p1', 'c1']
        >>> links.expand([("p1", "Ada Lind works for Varn Tools.")], max_linked=2)
        ['c1']
    """

    def __init__(self, titles: Mapping[str, str | None]) -> None:
        if not isinstance(titles, Mapping):
            raise TypeError(f"titles must map passage ids to titles, got {type(titles).__name__}")
        self._ids: dict[str, list[str]] = {}
        for passage_id, title in titles.items():
            if title is None or title == "":
                continue
            if not isinstance(title, str):
                raise TypeError(f"the title of passage {passage_id!r} must be a string, got {type(title).__name__}")
            self._ids.setdefault(title.strip(), []).append(str(passage_id))
        ordered = sorted(self._ids, key=len, reverse=True)
        self._pattern = re.compile(r"(?<!\w)(" + "|".join(map(re.escape, ordered)) + r")(?!\w)") if ordered else None

    def __len__(self) -> int:
        return sum(len(ids) for ids in self._ids.values())

    def mentioned(self, text: str) -> list[str]:
        """Ids of the passages whose titles ``text`` names, in order of first mention, each once."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a string, got {type(text).__name__}")
        if self._pattern is None:
            return []
        found: dict[str, None] = {}
        for match in self._pattern.finditer(text):
            found.update(dict.fromkeys(self._ids[match.group(1)]))
        return list(found)

    def expand(self, hits: Sequence[tuple[str, str]], *, follow: int = 1, max_linked: int = 2) -> list[str]:
        """The second hop: ids of passages that the first ``follow`` hits mention and that are not hits
        themselves, in the hits' order, at most ``max_linked``.

        Args:
            hits: ``(id, text)`` of what the first retrieval found, best first.
        """
        check_link_counts(follow, max_linked)
        seen = {str(passage_id) for passage_id, _ in hits}
        linked: list[str] = []
        for _, text in list(hits)[:follow]:
            for passage_id in self.mentioned(text):
                if len(linked) == max_linked:
                    return linked
                if passage_id not in seen:
                    seen.add(passage_id)
                    linked.append(passage_id)
        return linked


def check_link_counts(follow: int, max_linked: int) -> None:
    """``ValueError`` unless both are non-negative integers."""
    for name, value in (("follow", follow), ("max_linked", max_linked)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
