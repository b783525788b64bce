"""Fit a classifier on stored labels; measure it on a held-out slice.

The label map is always the label config's choice order (`Schema.labels`), never the classes
that happen to be annotated so far: class 7 means the same thing in every version.
"""
from __future__ import annotations

import logging
import math
import tempfile
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import StratifiedKFold, train_test_split

from .encoder import Encoder
from .model import Classifier, HeadClassifier, MCHead, TransformerClassifier

log = logging.getLogger(__name__)

MIN_HEAD_STEPS = 500


@dataclass(frozen=True)
class TrainConfig:
    """How to train; `settings.Settings` provides these from the environment."""

    mode: str = "head"
    epochs: int = 30
    learning_rate: float = 3e-3
    batch_size: int = 128
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
    # Few labels would mean few steps: train for at least 500 so a small head still converges
    # (measured on CLINC150: 500 steps of 128 reach the accuracy of 30 epochs of 32, 3x faster).
    steps_per_epoch = math.ceil(len(x) / cfg.batch_size)
    epochs = max(cfg.epochs, math.ceil(MIN_HEAD_STEPS / steps_per_epoch))
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


def scores(y: np.ndarray, pred: np.ndarray) -> Dict[str, float]:
    """Accuracy and macro-F1 (over the classes present in `y`)."""
    return {
        "accuracy": float(accuracy_score(y, pred)),
        "macro_f1": float(f1_score(y, pred, average="macro", labels=np.unique(y), zero_division=0)),
        "n_eval": int(len(y)),
    }


def quality_splits(y: np.ndarray, fraction: float, seed: int) -> Tuple[str, List[Tuple[np.ndarray, np.ndarray]]]:
    """(method, [(train idx, eval idx), ...]) to measure a version, or ("none", []) when labels are too few.

    A held-out slice of `fraction` when it holds at least 20 labels (stratified when every class
    has 2 labels); below that a slice is too noisy, so k-fold cross-validation (k <= 5, stratified)
    while every class present has at least 2 labels.
    """
    n = len(y)
    _, counts = np.unique(y, return_counts=True)
    idx = np.arange(n)
    if fraction <= 0 or n < 4:
        return "none", []
    n_eval = int(round(n * fraction))
    if n_eval >= 20:
        stratify = y if counts.min() >= 2 else None
        train, test = train_test_split(idx, test_size=n_eval, stratify=stratify, random_state=seed)
        return "holdout", [(train, test)]
    if counts.min() < 2:
        return "none", []
    k = int(min(5, counts.min()))
    folds = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(idx, y)
    return f"{k}-fold cv", list(folds)


def fit_with_quality(
    encoder: Encoder, base_model: str, labels: Sequence[str], texts: Sequence[str], y: np.ndarray, cfg: TrainConfig
) -> Tuple[Classifier, Dict[str, object]]:
    """Measure on held-out labels (when they allow), then fit the version on ALL labels."""
    method, splits = quality_splits(y, cfg.eval_fraction, cfg.seed)
    metrics: Dict[str, object] = {}
    if splits:
        truth, pred = [], []
        for tr, te in splits:
            probe = fit(encoder, base_model, labels, [texts[i] for i in tr], y[tr], cfg)
            pred.append(probe.predict_proba([texts[i] for i in te], cfg.num_draws).mean(-1).argmax(1))
            truth.append(y[te])
        metrics = {**scores(np.concatenate(truth), np.concatenate(pred)), "eval": method}
    return fit(encoder, base_model, labels, texts, y, cfg), metrics
