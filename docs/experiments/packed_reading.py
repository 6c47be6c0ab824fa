"""The "packed reading" experiment of the model card's "Tried since v0.1" section (not part of the package).

Continues a backbone on reading practice: one passage (with 0-3 distractor passages), then every fact
of its entity asked and answered in turn, only answer tokens scored, entities from fresh synthetic
worlds in every batch so nothing can be memorised. Runs for a fixed wall-clock budget.

    python docs/experiments/packed_reading.py build/dm/backbone2 build/exp/packed1 25   # minutes
"""

import math
import random
import sys
import time

import torch
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from gmsa_integrations.data.synth import QUESTIONS, build_world
from gmsa_integrations.engine.prompts import ANSWER_TEMPLATE, PASSAGE_SEPARATOR, QUESTION_TEMPLATE


def examples(tokenizer, rng, max_length=512):
    eos, seed = tokenizer.eos_token_id, 10_000
    while True:
        world = build_world(seed, held_out=False, people=60, orgs=20, places=15)
        seed += 1
        everyone = [*world.people, *world.orgs, *world.places]
        rng.shuffle(everyone)
        for entity in everyone:
            others = [o for o in rng.sample(everyone, 4) if o is not entity][: rng.randint(0, 3)]
            passages = [world.passages[e.name] for e in [entity, *others]]
            rng.shuffle(passages)
            ids = tokenizer(PASSAGE_SEPARATOR.join(passages))["input_ids"]
            labels = [-100] * len(ids)
            facts = list(entity.facts.items())
            rng.shuffle(facts)
            for fact, value in facts:
                question = rng.choice(QUESTIONS[fact]).format(name=entity.name)
                q = tokenizer(QUESTION_TEMPLATE.format(question=question), add_special_tokens=False)["input_ids"]
                a = [*tokenizer(ANSWER_TEMPLATE.format(answer=value), add_special_tokens=False)["input_ids"], eos]
                ids, labels = ids + q + a, labels + [-100] * len(q) + a
            if len(ids) <= max_length:
                yield ids, labels


def collate(items):
    width = max(len(ids) for ids, _ in items)
    x = torch.zeros(len(items), width, dtype=torch.long)
    y = torch.full((len(items), width), -100)
    mask = torch.zeros(len(items), width, dtype=torch.long)
    for row, (ids, labels) in enumerate(items):
        x[row, : len(ids)], y[row, : len(labels)], mask[row, : len(ids)] = torch.tensor(ids), torch.tensor(labels), 1
    return x, y, mask


def main(init: str, out: str, minutes: float, lr: float = 1e-3, batch: int = 16) -> None:
    tokenizer = PreTrainedTokenizerFast.from_pretrained(init)
    model = LlamaForCausalLM.from_pretrained(init, dtype=torch.float32).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    stream, budget, start, step, losses = examples(tokenizer, random.Random(0)), minutes * 60, time.time(), 0, []
    while time.time() - start < budget:
        progress = (time.time() - start) / budget  # cosine over the time budget, 20 warm-up steps
        for group in optimizer.param_groups:
            group["lr"] = lr * min(1.0, (step + 1) / 20) * 0.5 * (1 + math.cos(math.pi * progress))
        x, y, mask = collate([next(stream) for _ in range(batch)])
        loss = model(input_ids=x, attention_mask=mask, labels=y).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
        step += 1
        if step % 25 == 0:
            print(f"step {step} {time.time() - start:.0f}s answer loss {sum(losses[-25:]) / 25:.3f}", flush=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    print(f"{out}: {step} steps")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]), *(float(a) for a in sys.argv[4:5]))
