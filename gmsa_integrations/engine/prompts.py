"""The question-answering prompt format shared by the default model's training and both adapters.

Context passages (soft-token references after compression, or plain text) are joined with a blank
line and followed by the question, so the compressed and the full-text paths see the same layout.
"""

QA_TEMPLATE = "{context}\nQuestion: {question}\nAnswer:"
PASSAGE_SEPARATOR = "\n\n"
QUESTION_TEMPLATE = QA_TEMPLATE.removeprefix("{context}")
"""What follows the context in `QA_TEMPLATE` (KEFT's prompt after the soft tokens)."""
ANSWER_TEMPLATE = " {answer}"
"""KEFT's target: the answer after ``Answer:``, as the backbone was pretrained to write it."""

AE_INSTRUCTION = "Restate the aforementioned Text."
"""What follows a passage (or its soft tokens) when the model is asked to restate it (autoencoder stage)."""
