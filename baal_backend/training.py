"""Fit a classifier on stored labels; measure it on a held-out slice.

The label map is always the label config's choice order (`Schema.labels`), never the classes
that happen to be annotated so far: class 7 means the same thing in every version.
"""
from __future__ import annotations

import logging
import math
import tempfile
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split

from .encoder import Encoder
from .model import Classifier, HeadClassifier, MCHead, TransformerClassifier

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """How to train; `settings.Settings` provides these from the environment."""

    mode: str = "head"
    epochs: int = 30
    learning_rate: float = 1e-3
    batch_size: int = 32
    max_length: int = 128
    eval_fraction: float = 0.2
    num_draws: int = 20
    seed: int = 0


def train_head(
    encoder: Encoder, labels: Sequence[str], texts: Sequence[str], y: np.ndarray, cfg: TrainConfig
) -> HeadClassifier:
    """Train a fresh MC-Dropout MLP head on frozen, cached embeddings (seconds on a CPU)."""
    return train_head_on_embeddings(encoder, labels, encoder.embed(texts), y, cfg)


def train_head_on_embeddings(
    encoder: Encoder, labels: Sequence[str], emb: np.ndarray, y: np.ndarray, cfg: TrainConfig
) -> HeadClassifier:
    torch.manual_seed(cfg.seed)
    head = MCHead(encoder.dim, len(labels))
    x, t = torch.from_numpy(emb), torch.as_tensor(y, dtype=torch.long)
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.learning_rate, weight_decay=1e-2)
    # Few labels would mean few steps: train for at least 200 so a 10-label head still fits.
    steps_per_epoch = math.ceil(len(x) / cfg.batch_size)
    epochs = max(cfg.epochs, math.ceil(200 / steps_per_epoch))
    gen = torch.Generator().manual_seed(cfg.seed)
    head.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=gen).split(cfg.batch_size):
            loss = torch.nn.functional.cross_entropy(head(x[idx]), t[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return HeadClassifier(encoder, head, labels)


def train_finetune(
    base_model: str, labels: Sequence[str], texts: Sequence[str], y: np.ndarray, cfg: TrainConfig
) -> TransformerClassifier:
    """Fine-tune the whole network with baal's `BaalTransformersTrainer`, the tutorial's way."""
    from baal.transformers_trainer_wrapper import BaalTransformersTrainer
    from datasets import Dataset
    from transformers import DataCollatorWithPadding, TrainingArguments

    from .hf import load_classifier, load_tokenizer

    tokenizer = load_tokenizer(base_model)
    model = load_classifier(base_model, labels, seed=cfg.seed)
    # Tokenise ourselves and pad per batch: baal's HuggingFaceDatasets pads everything to max
    # length and renumbers labels by the classes present (see DESIGN.md's traps).
    ds = Dataset.from_dict({"text": list(texts), "label": [int(v) for v in y]}).map(
        lambda b: tokenizer(b["text"], truncation=True, max_length=cfg.max_length), batched=True
    )
    ds = ds.remove_columns(["text"])
    with tempfile.TemporaryDirectory(prefix="baal-train-") as out:
        args = TrainingArguments(
            output_dir=out,
            num_train_epochs=cfg.epochs,
            learning_rate=cfg.learning_rate,
            per_device_train_batch_size=cfg.batch_size,
            save_strategy="no",
            report_to=[],
            logging_strategy="no",
            disable_tqdm=True,
            seed=cfg.seed,
            use_cpu=not torch.cuda.is_available(),
        )
        trainer = BaalTransformersTrainer(
            model=model, args=args, train_dataset=ds, data_collator=DataCollatorWithPadding(tokenizer)
        )
        trainer.train()
    return TransformerClassifier(trainer.model.cpu(), tokenizer, max_length=cfg.max_length)


def fit(
    encoder: Encoder, base_model: str, labels: Sequence[str], texts: Sequence[str], y: np.ndarray, cfg: TrainConfig
) -> Classifier:
    if cfg.mode == "head":
        return train_head(encoder, labels, texts, y, cfg)
    return train_finetune(base_model, labels, texts, y, cfg)


def evaluate(clf: Classifier, texts: Sequence[str], y: np.ndarray, draws: int) -> Dict[str, float]:
    """Accuracy and macro-F1 of the MC-averaged prediction."""
    pred = clf.predict_proba(texts, draws).mean(-1).argmax(1)
    return {
        "accuracy": float(accuracy_score(y, pred)),
        "macro_f1": float(f1_score(y, pred, average="macro", labels=np.unique(y), zero_division=0)),
        "n_eval": int(len(y)),
    }


def holdout_split(y: np.ndarray, fraction: float, seed: int) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """Stratified (train, eval) indices, or None when the labels are too few to spare a slice.

    Needs at least 2 examples of every class present and an eval slice of at least 5 labels and
    one per class, so the figure means something.
    """
    n = len(y)
    classes, counts = np.unique(y, return_counts=True)
    n_eval = int(round(n * fraction))
    if fraction <= 0 or counts.min() < 2 or n_eval < max(5, len(classes)) or n - n_eval < len(classes):
        return None
    idx = np.arange(n)
    train, test = train_test_split(idx, test_size=n_eval, stratify=y, random_state=seed)
    return train, test


def fit_with_quality(
    encoder: Encoder, base_model: str, labels: Sequence[str], texts: Sequence[str], y: np.ndarray, cfg: TrainConfig
) -> Tuple[Classifier, Dict[str, float]]:
    """Measure on a held-out slice (when the labels allow), then fit the version on ALL labels."""
    metrics: Dict[str, float] = {}
    split = holdout_split(y, cfg.eval_fraction, cfg.seed)
    if split is not None:
        tr, te = split
        probe = fit(encoder, base_model, labels, [texts[i] for i in tr], y[tr], cfg)
        metrics = evaluate(probe, [texts[i] for i in te], y[te], cfg.num_draws)
        metrics["eval"] = "holdout"
    return fit(encoder, base_model, labels, texts, y, cfg), metrics
