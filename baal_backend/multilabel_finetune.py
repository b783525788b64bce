"""Fine-tune mode for a multi-label question: the encoder's body fine-tuned under the sigmoid
MC-Dropout head that head mode fitted on its frozen embeddings (`multilabel.fit_multilabel`).

The same path as single-label fine-tuning (`training.train_finetune`): a fresh copy of the base
body, mean pooling, the warm head on top, trained with baal's `BaalTransformersTrainer` for steps
(`training.train_with_baal`), here with the head's weighted binary cross-entropy. The version
keeps the warm fit's thresholds and label cardinality: they come from out-of-fold probabilities,
and k more fine-tuned models to refit them would multiply a run's time by k. The held-out quality
comes from a probe fine-tuned without the held-out slice (as single-label fine-tuning measures).
"""
from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch

from . import quality, trainer_process
from .encoder import Encoder
from .hf import load_base_model, load_tokenizer
from .model import BODY_DIR, META_FILE, TUNED_CACHE
from .multilabel import (DEFAULT_BALANCE, MultiLabelClassifier, MultiLabelFit, decide, fit_multilabel, pos_weights,
                         scores, stratification_key)
from .training import SentenceModel, TrainConfig, head_config, train_with_baal

TUNED_KIND = "multilabel-finetuned-body"
#: for the training fingerprint (`publishing`): change it whenever this recipe changes
RECIPE = "multi-label: warm sigmoid head, weighted BCE, out-of-fold thresholds of the warm fit"


class TunedMultiLabelClassifier(MultiLabelClassifier):
    """A multi-label head over its own fine-tuned body (saved under `body/`): it predicts like
    `MultiLabelClassifier`, the body once per text and the head's MC-Dropout draws on top."""

    kind = TUNED_KIND

    def save(self, path: Path) -> None:
        super().save(path)
        self.encoder.model.save_pretrained(path / BODY_DIR)
        self.encoder.tokenizer.save_pretrained(path / BODY_DIR)

    @classmethod
    def load(cls, path: Path, encoder: Encoder = None, max_length: int = 128) -> "TunedMultiLabelClassifier":
        """From a version directory: the body is the version's own (`encoder` is not used)."""
        path = Path(path)
        if json.loads((path / META_FILE).read_text()).get("kind") != TUNED_KIND:
            raise ValueError(f"{path} holds no {TUNED_KIND!r} classifier")
        body = Encoder(str(path / BODY_DIR), max_length=max_length, cache_size=TUNED_CACHE)
        saved = MultiLabelClassifier.read(path, body)
        return cls(body, saved.head, saved.labels, saved.thresholds, saved.at_least_one, saved.cardinality,
                   saved.prior)


def train_tuned(base_model: str, warm: MultiLabelClassifier, texts: Sequence[str], y: np.ndarray, cfg: TrainConfig,
                balance: str = DEFAULT_BALANCE) -> TunedMultiLabelClassifier:
    """Fine-tune a fresh copy of `base_model`'s body under a copy of `warm`'s head and its
    label-name prior (a fixed offset, as in head mode)."""
    tokenizer = load_tokenizer(base_model)
    torch.manual_seed(cfg.seed)
    model = SentenceModel(load_base_model(base_model), copy.deepcopy(warm.head), warm.prior,
                          pos_weight=pos_weights(y, balance))
    train_with_baal(model, model.body, tokenizer, texts, np.asarray(y, dtype=np.float32), cfg)
    model = model.eval()
    encoder = Encoder(base_model, max_length=cfg.max_length, cache_size=TUNED_CACHE, model=model.body,
                      tokenizer=tokenizer)
    return TunedMultiLabelClassifier(encoder, model.head.cpu(), warm.labels, warm.thresholds, warm.at_least_one,
                                     warm.cardinality, warm.prior)


def fit_tuned_with_quality(base_model: str, encoder: Encoder, labels: Sequence[str], texts: Sequence[str],
                           emb: np.ndarray, y: np.ndarray, groups: Sequence[int], cfg: TrainConfig,
                           warm: MultiLabelFit, prototypes: Optional[np.ndarray] = None
                           ) -> Tuple[TunedMultiLabelClassifier, Dict[str, object]]:
    """The version, fine-tuned on every label from `warm` (head mode's fit of them), and its
    quality: a probe fine-tuned without a held-out slice of tasks, decided by the thresholds of its
    own warm fit. Only a held-out slice: k-fold would fine-tune k more models."""
    y = np.asarray(y, dtype=np.float32)
    groups = np.asarray(groups)
    plan = quality.plan(stratification_key(y), groups, cfg.eval_fraction, cfg.seed, max_folds=1)
    metrics: Dict[str, object] = {"eval": "none", "reason": plan.reason}
    if plan.method == "holdout":
        (train, test), = plan.splits
        probe_fit = trainer_process.run(fit_multilabel, emb[train], y[train], groups[train],
                                        replace(head_config(cfg), eval_fraction=0.0), labels, prototypes)
        probe = train_tuned(base_model, probe_fit.classifier(encoder, labels), [texts[i] for i in train], y[train], cfg)
        pred = decide(probe.predict_proba([texts[i] for i in test], cfg.num_draws).mean(-1), probe.thresholds,
                      probe.at_least_one)
        metrics = {**scores(y[test], pred, labels), "eval": plan.method}
    tuned = train_tuned(base_model, warm.classifier(encoder, labels), texts, y, cfg)
    return tuned, {**metrics, "thresholds_from": "out-of-fold (head mode)"}
