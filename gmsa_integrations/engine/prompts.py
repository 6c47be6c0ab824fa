"""The question-answering prompt format shared by the default model's training and both adapters.

Context passages (soft-token references after compression, or plain text) are joined with a blank
line and followed by the question, so the compressed and the full-text paths see the same layout.
"""

from transformers import PreTrainedTokenizerBase

QA_TEMPLATE = "{context}\nQuestion: {question}\nAnswer:"
PASSAGE_SEPARATOR = "\n\n"
QUESTION_TEMPLATE = QA_TEMPLATE.removeprefix("{context}")
"""What follows the context in `QA_TEMPLATE` (KEFT's prompt after the soft tokens)."""
ANSWER_TEMPLATE = " {answer}"
"""KEFT's target: the answer after ``Answer:``, as the backbone was pretrained to write it."""

AE_INSTRUCTION = "Restate the aforementioned Text."
"""What follows a passage (or its soft tokens) when the model is asked to restate it (autoencoder stage)."""


def first_tokens(tokenizer: PreTrainedTokenizerBase, text: str, limit: int) -> str:
    """``text`` cut to its first ``limit`` tokens: what training restates from a passage longer than its
    ``max_length``, and so the reference that the reconstruction eval compares a restatement against."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return text if len(ids) <= limit else tokenizer.decode(ids[:limit])
