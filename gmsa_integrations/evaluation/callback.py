"""`ValidationCallback`: held-out reconstruction (BLEU, likelihood) and QA exact match in the training log.

Training loss alone is no evidence that soft tokens are read (a tunable decoder can learn the training
text's style instead); held-out reconstruction and QA are. The callback measures them with the same
functions as ``gmsa eval`` and appends one record per evaluation to ``log.jsonl`` beside the loss records.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from ..data.records import AERow, QARow
from ..engine import GMSAEngine
from .harness import evaluate_qa, evaluate_reconstruction


class ValidationCallback(TrainerCallback):
    """At the start of a fresh run, every ``every`` optimizer steps and at the end, evaluate ``engine`` at
    ``rate`` and log it (step 0 is the initial weights, the point every later one is compared with).

    ``max_length`` cuts the validation passages as training cuts its own (``TrainConfig.max_length``), so
    reconstruction is measured on the length the model learns to restate.

    Example:
        >>> from gmsa_integrations.training import TrainConfig, train
        >>> callback = lambda engine: ValidationCallback(engine, ae_rows, qa_rows, every=100)  # doctest: +SKIP
        >>> train(TrainConfig(stage="ae", ...), callbacks=[callback])                          # doctest: +SKIP
    """

    def __init__(
        self,
        engine: GMSAEngine,
        ae_rows: Sequence[AERow],
        qa_rows: Sequence[QARow],
        *,
        every: int,
        rate: int = 4,
        max_length: int | None = None,
    ) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive int, got {every!r}")
        if not ae_rows and not qa_rows:
            raise ValueError("ValidationCallback needs autoencoder rows, QA rows, or both")
        self.engine, self.ae_rows, self.qa_rows = engine, list(ae_rows), list(qa_rows)
        self.every, self.rate, self.max_length = every, rate, max_length

    def measure(self) -> dict[str, float]:
        """The validation metrics of the engine as it is now: ``val_bleu_4x``, ``val_nll_4x`` and ``val_nll_gain_4x``
        (nats per token; see `evaluate_reconstruction`), ``val_em_4x`` and ``val_f1_4x``."""
        model = self.engine.model
        was_training = model.training
        model.eval()
        try:
            values: dict[str, float] = {}
            if self.ae_rows:
                (recon,) = evaluate_reconstruction(self.engine, self.ae_rows, [self.rate], max_length=self.max_length)
                for key in ("bleu", "nll", "nll_gain"):
                    if key in recon.values:
                        values[f"val_{key}_{self.rate}x"] = recon.values[key]
            if self.qa_rows:
                (qa,) = evaluate_qa(self.engine, self.qa_rows, [self.rate], ["gmsa"])
                values[f"val_em_{self.rate}x"] = qa.values["exact_match"]
                values[f"val_f1_{self.rate}x"] = qa.values["f1"]
        finally:
            model.unmerge_encoder_lora()  # compression folds the encoder LoRA in; training needs it apart
            model.train(was_training)
        return values

    def _log(self, args: Any, state: Any) -> None:
        record = {"step": state.global_step, **self.measure()}
        with (Path(args.output_dir) / "log.jsonl").open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        print(json.dumps(record), flush=True)

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        # a fresh run's curves start from what its initial weights (random LoRA, or --init's model) already do;
        # a resumed run has that point in its log already
        if state.is_world_process_zero and state.global_step == 0:
            self._log(args, state)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero and state.global_step % self.every == 0:
            self._log(args, state)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero and state.global_step % self.every != 0:
            self._log(args, state)
