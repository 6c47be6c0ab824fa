"""The question-answering prompt format shared by the default model's training and both adapters.

Context passages (soft-token references after compression, or plain text) are joined with a blank
line and followed by the question, so the compressed and the full-text paths see the same layout.
"""

QA_TEMPLATE = "{context}\nQuestion: {question}\nAnswer:"
PASSAGE_SEPARATOR = "\n\n"
