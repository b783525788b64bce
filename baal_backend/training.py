"""Fit a classifier on stored labels; measure it on a held-out slice.

The label map is always the label config's choice order (`Schema.labels`), never the classes
that happen to be annotated so far: class 7 means the same thing in every version.
"""
from __future__ import annotations

import copy
import logging
import math
import tempfile
import time
from dataclasses import dataclass, replace
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from sklearn.model_selection import GroupKFold
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

from . import quality, trainer_process
from .encoder import Encoder, clip, mean_pool
from .logs import public_error
from .hf import is_finetuned_for
from .model import TUNED_CACHE, Classifier, HeadClassifier, MCHead, TransformerClassifier, TunedClassifier, mc_proba
from .prior import LabelPrior, prior_offset
from .settings import MODE_DEFAULTS

log = logging.getLogger(__name__)

MIN_HEAD_STEPS = 500
FINETUNE_MIN_STEPS = 100  # from a warm start; a fresh classifier layer needed 200
#: What fine-tune mode does beyond `TrainConfig`, for the training fingerprint: change it whenever
#: that changes, so versions trained the old way are retrained rather than kept as "unchanged".
FINETUNE_RECIPE = f"warm head, output at zero, prototype anchors, {FINETUNE_MIN_STEPS} steps"


@dataclass(frozen=True)
class TrainConfig:
    """How to train; `settings.Settings` provides these from the environment."""

    mode: str = "head"
    epochs: int = MODE_DEFAULTS["head"]["epochs"]
    learning_rate: float = MODE_DEFAULTS["head"]["learning_rate"]
    batch_size: int = MODE_DEFAULTS["head"]["batch_size"]
    max_length: int = 128
    eval_fraction: float = 0.2
    num_draws: int = 20
    seed: int = 0
    prior: bool = True  # learn on top of the label-name prior
    head_learning_rate: float = 2e-3  # finetune mode: the classifier layers' rate (the body's: learning_rate)


def train_mc_head(emb: np.ndarray, y: np.ndarray, n_classes: int, cfg: TrainConfig,
                  prior: Optional[LabelPrior] = None) -> MCHead:
    """Train a fresh MC-Dropout MLP head on frozen embeddings (seconds on a CPU). With a prior,
    the head learns what to add to the prior's logits, and each class's name prototype is one
    more training example of it: a class nobody labeled yet keeps its share instead of being
    trained away (CLINC150, 150 k-means labels: 0.730 -> 0.760). The head's `fit_stats_` say
    how: labels, epochs, steps, final loss, seconds."""
    started = time.perf_counter()
    gen = torch.Generator().manual_seed(cfg.seed)  # this run's own randomness (see MCHead)
    head = MCHead(emb.shape[1], n_classes, generator=gen)
    if prior is not None and prior.scale > 0:
        # each class's name is one more example of it: classes with no label yet keep their share
        named = prior.named()
        emb = np.concatenate([emb, prior.prototypes[named]])
        y = np.concatenate([y, named])
    x, t = torch.from_numpy(np.ascontiguousarray(emb, dtype=np.float32)), torch.as_tensor(y, dtype=torch.long)
    offset = prior_offset(prior, emb)
    base = torch.from_numpy(offset) if offset is not None else torch.zeros(len(x), n_classes)
    return fit_head_loop(head, len(x), cfg, gen, started, lambda idx, out: torch.nn.functional.cross_entropy(
        out + base[idx], t[idx]), lambda idx: head(x[idx], generator=gen))


def fit_head_loop(head: MCHead, n: int, cfg: TrainConfig, gen: torch.Generator, started: float,
                  loss_of: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                  forward: Callable[[torch.Tensor], torch.Tensor], equal_batches: bool = False) -> MCHead:
    """The AdamW loop every head trains with: at least `MIN_HEAD_STEPS` steps, so a small head
    still converges (measured on CLINC150: 500 steps of 128 reach the accuracy of 30 epochs of
    32, 3x faster); `equal_batches` splits each epoch evenly instead of leaving a small last
    batch. Sets the head's `fit_stats_`: labels, epochs, steps, final loss, seconds."""
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.learning_rate, weight_decay=1e-2)
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    epochs = max(cfg.epochs, math.ceil(MIN_HEAD_STEPS / steps_per_epoch))
    head.train()
    steps, loss = 0, torch.zeros(())
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen)
        for idx in order.tensor_split(steps_per_epoch) if equal_batches else order.split(cfg.batch_size):
            loss = loss_of(idx, forward(idx))
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
    head.fit_stats_ = {"labels": n, "epochs": epochs, "steps": steps, "loss": round(float(loss.detach()), 4),
                       "seconds": round(time.perf_counter() - started, 3)}
    return head.eval()


def train_head_on_embeddings(
    encoder: Encoder, labels: Sequence[str], emb: np.ndarray, y: np.ndarray, cfg: TrainConfig,
    prior: Optional[LabelPrior] = None, pool: Optional[np.ndarray] = None,
) -> HeadClassifier:
    """A head on these labels; with a prior, the prior first refined by them and the unlabeled
    `pool` (`fit_head`'s rule)."""
    prior = prior.refined(emb, y, _rows(pool, emb)) if prior is not None else None
    return HeadClassifier(encoder, train_mc_head(emb, y, len(labels), cfg, prior), labels, prior)


def _rows(pool: Optional[np.ndarray], like: np.ndarray) -> np.ndarray:
    return np.empty((0, like.shape[1]), dtype=np.float32) if pool is None else pool


OOF_FOLDS = 5


@dataclass
class HeadFit:
    """What `fit_head` returns (NumPy only: it crosses from the training process)."""

    state: Dict[str, np.ndarray]  # the head's weights
    prototypes: Optional[np.ndarray]  # the refined prior's, or None without a prior
    metrics: Dict[str, object]
    out_of_fold: Optional[np.ndarray]  # [labels, classes]: each label's probabilities from a head that never saw its task

    def classifier(self, encoder: Encoder, labels: Sequence[str]) -> HeadClassifier:
        prior = LabelPrior(self.prototypes, self.metrics["prior_scale"]) if self.prototypes is not None else None
        return HeadClassifier.from_state(encoder, self.state, labels, prior)


def fit_head(
    emb: np.ndarray, y: np.ndarray, groups: Sequence[int], n_classes: int, cfg: TrainConfig,
    prototypes: Optional[np.ndarray] = None, pool: Optional[np.ndarray] = None,
) -> HeadFit:
    """A version's head, its prior, its quality and its out-of-fold probabilities: probes on
    held-out tasks, `OOF_FOLDS` heads each without a fold of tasks (for the suspicious labels),
    then the head on all labels. With the label-name `prototypes`, each fit first refines the
    prior with its own labels and the unlabeled `pool` embeddings (a probe's held-out texts join
    its pool: unlabeled to it), then the head learns on top of the prior.

    NumPy in, NumPy out, so the server runs it in its training process (`trainer_process`),
    away from the request threads.
    """
    prior = LabelPrior(prototypes) if prototypes is not None else None
    pool = _rows(pool, emb)

    def fitted(rows: np.ndarray, unlabeled: np.ndarray) -> Tuple[MCHead, Optional[LabelPrior]]:
        p = prior.refined(emb[rows], y[rows], unlabeled) if prior is not None else None
        return train_mc_head(emb[rows], y[rows], n_classes, cfg, p), p

    oof = np.full((len(y), n_classes), np.nan, dtype=np.float32)

    def fold_proba(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        probe, p = fitted(train, np.concatenate([pool, emb[test]]))
        oof[test] = mc_proba(probe, emb[test], cfg.num_draws, p).mean(-1)
        return oof[test]

    metrics = measure(y, groups, cfg, lambda train, test: fold_proba(train, test).argmax(1))
    # the quality folds (k-fold) cover every label: reused; EVAL_FRACTION=0 (no probes wanted) skips it
    if np.isnan(oof).any() and cfg.eval_fraction > 0 and len(np.unique(groups)) >= OOF_FOLDS:
        for train, test in GroupKFold(OOF_FOLDS).split(emb, y, groups):
            fold_proba(train, test)
    oof = None if np.isnan(oof).any() else oof
    head, final = fitted(np.arange(len(y)), pool)
    # name_scale: how much the names alone explain the labels (0: cryptic names, left out)
    extra = {"prior_scale": final.scale, "name_scale": prior.fit_scale(emb, y).scale} if final is not None else {}
    state = {k: v.numpy() for k, v in head.state_dict().items()}
    return HeadFit(state, final.prototypes if final is not None else None, {**metrics, **extra, "fit": head.fit_stats_}, oof)


def measure(y: np.ndarray, groups: Sequence[int], cfg: TrainConfig, predict_fold, max_folds: int = quality.MAX_FOLDS
            ) -> Dict[str, object]:
    """`quality.measure` that never stops a version: if it fails, the metrics say why."""
    try:
        return quality.measure(quality.plan(y, groups, cfg.eval_fraction, cfg.seed, max_folds), y, predict_fold)
    except Exception as exc:  # noqa: BLE001 - a metric is never worth a lost version
        log.warning("held-out quality failed, publishing without it: %s", exc, exc_info=True)
        return {"eval": "failed", "reason": public_error(exc)}


class SentenceModel(nn.Module):
    """What fine-tuning trains: the body, mean pooling (the encoder's), the warm-started MC-Dropout
    head, and the prior's logits on top (`prior_offset`'s, its prototypes fixed), with the
    cross-entropy loss the Trainer reads. As in `train_mc_head`, each class's prototype is one more
    training example of it (`anchor_weight`: its weight against one label), so a class with no
    label yet keeps its share instead of being trained away. With `pos_weight` (one per label) the
    outputs are independent labels (multi-label): the loss is the sigmoid head's weighted binary
    cross-entropy, as `multilabel.train_sigmoid_head` trains it on frozen embeddings."""

    accepts_loss_kwargs = False  # the loss is a plain mean: the Trainer scales it for accumulation

    def __init__(self, body: PreTrainedModel, head: MCHead, prior: Optional[LabelPrior], anchor_weight: float = 0.0,
                 pos_weight: Optional[np.ndarray] = None):
        super().__init__()
        self.body, self.head = body, head
        self.register_buffer("pos_weight", None if pos_weight is None else torch.as_tensor(pos_weight,
                                                                                            dtype=torch.float32))
        on = prior is not None and prior.scale > 0
        named = prior.named() if on else np.empty(0, dtype=np.int64)
        self.register_buffer("prior_weights", torch.from_numpy(prior.scale * prior.prototypes) if on else None)
        bias = getattr(prior, "bias", None) if on else None  # a multi-label prior's per-label bias
        self.register_buffer("prior_bias", None if bias is None else torch.as_tensor(bias, dtype=torch.float32))
        self.register_buffer("anchors", torch.from_numpy(prior.prototypes[named]) if on else None)
        self.register_buffer("anchor_labels", torch.from_numpy(named))
        self.anchor_weight = anchor_weight

    def logits(self, pooled: torch.Tensor) -> torch.Tensor:
        out = self.head(pooled)
        if self.prior_weights is not None:
            out = out + pooled @ self.prior_weights.T
        return out if self.prior_bias is None else out + self.prior_bias

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: Optional[torch.Tensor] = None,
                labels: Optional[torch.Tensor] = None) -> SequenceClassifierOutput:
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}  # DistilBERT has none
        pooled = mean_pool(self.body(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state,
                           attention_mask)
        logits = self.logits(pooled)
        loss = None
        if labels is not None and self.pos_weight is not None:
            loss = nn.functional.binary_cross_entropy_with_logits(logits, labels.float(), pos_weight=self.pos_weight)
        elif labels is not None:
            loss = nn.functional.cross_entropy(logits, labels, reduction="sum")
            weight = float(len(labels))
            if self.anchors is not None and self.anchor_weight > 0 and len(self.anchors):
                ce = nn.functional.cross_entropy(self.logits(self.anchors), self.anchor_labels, reduction="sum")
                loss = loss + self.anchor_weight * ce
                weight += self.anchor_weight * len(self.anchors)
            loss = loss / weight
        return SequenceClassifierOutput(loss=loss, logits=logits)


def head_config(cfg: TrainConfig) -> TrainConfig:
    """How to train the head: `cfg` in head mode; in fine-tune mode (the warm start), `cfg` with
    the head's own default recipe (fine-tuning's 3 epochs at 5e-5 would leave a head untrained)."""
    return cfg if cfg.mode == "head" else replace(cfg, mode="head", **MODE_DEFAULTS["head"])


def train_finetune(
    base_model: str, warm: HeadClassifier, texts: Sequence[str], y: np.ndarray, cfg: TrainConfig,
    zero_output: bool = True,
) -> TunedClassifier:
    """Fine-tune a fresh copy of the base body under `warm`'s head and prior (`warm`: a head trained
    on the frozen embeddings of these labels, on top of the refined label-name prior).

    What starts warm: the body's mean pooling (the space the prior and the head live in, not the
    pooler output the tutorial's classifier reads), the refined prior's logits, the head's hidden
    layer. The head's output layer starts at zero, so the model starts as the prior: a head already
    fitted to these labels leaves the body almost no loss to learn from (train loss 6e-6), and
    fine-tuning under it drifted (10 CLINC150 intents, 100 labels, 1 seed: 0.9833 vs 0.9867 with the
    output layer at zero; without the prior 0.9867 vs 0.9967; head mode 0.9900;
    `benchmarks/finetune_warm_start.py`, which sets `zero_output=False` for the comparison).
    """
    from .hf import load_base_model, load_tokenizer

    tokenizer = load_tokenizer(base_model)
    torch.manual_seed(cfg.seed)
    head = copy.deepcopy(warm.head)
    if zero_output:  # the model starts as the prior (uniform without one); see above
        with torch.no_grad():
            head.out[1].weight.zero_()
            head.out[1].bias.zero_()
    # a class's prototype weighs what one label does over an epoch (each label is in 1 batch of len/batch)
    model = SentenceModel(load_base_model(base_model), head, warm.prior, min(1.0, cfg.batch_size / max(1, len(texts))))
    train_with_baal(model, model.body, tokenizer, texts, y, cfg)
    model = model.eval()  # the body stays on the device it trained on (the Encoder's); the head runs on the CPU
    encoder = Encoder(base_model, max_length=cfg.max_length, cache_size=TUNED_CACHE, model=model.body,
                      tokenizer=tokenizer)
    return TunedClassifier(encoder, model.head.cpu(), warm.labels, warm.prior)


def train_checkpoint(
    base_model: str, labels: Sequence[str], texts: Sequence[str], y: np.ndarray, cfg: TrainConfig
) -> TransformerClassifier:
    """Fine-tune `base_model` as a whole sequence classifier (`hf.load_classifier`: the rows of the
    classes its checkpoint knows are kept). Fine-tune mode's path for a checkpoint that knows every
    class (`hf.is_finetuned_for`): its own classifier is the warm start."""
    from .hf import load_classifier, load_tokenizer

    tokenizer = load_tokenizer(base_model)
    model = load_classifier(base_model, labels, seed=cfg.seed)
    train_with_baal(model, getattr(model, model.base_model_prefix), tokenizer, texts, y, cfg)
    return TransformerClassifier(model.cpu(), tokenizer, max_length=cfg.max_length)


def train_with_baal(model: nn.Module, body: nn.Module, tokenizer, texts: Sequence[str], y: np.ndarray,
                     cfg: TrainConfig) -> None:
    """Train `model` in place with baal's `BaalTransformersTrainer`: `body` at `cfg.learning_rate`,
    everything else (the head) at its own `cfg.head_learning_rate` (at the body's 5e-5 a head
    barely moves), for steps rather than epochs (3 epochs of 100 labels are 21 steps)."""
    from baal.transformers_trainer_wrapper import BaalTransformersTrainer
    from datasets import Dataset
    from transformers import DataCollatorWithPadding, TrainingArguments

    # Tokenise ourselves and pad per batch: baal's HuggingFaceDatasets pads everything to max
    # length and renumbers labels by the classes present (see DESIGN.md's traps).
    targets = y.astype(np.float32).tolist() if y.ndim == 2 else [int(v) for v in y]  # multi-label: label rows
    ds = Dataset.from_dict({"text": clip(texts, cfg.max_length), "labels": targets}).map(
        lambda b: tokenizer(b["text"], truncation=True, max_length=cfg.max_length), batched=True
    )
    ds = ds.remove_columns(["text"])
    steps = max(FINETUNE_MIN_STEPS, cfg.epochs * math.ceil(len(texts) / cfg.batch_size))
    body_ids = {id(p) for p in body.parameters()}
    groups = [{"params": [p for p in model.parameters() if id(p) in body_ids], "lr": cfg.learning_rate},
              {"params": [p for p in model.parameters() if id(p) not in body_ids], "lr": cfg.head_learning_rate}]
    with tempfile.TemporaryDirectory(prefix="baal-train-") as out:
        args = TrainingArguments(
            output_dir=out,
            max_steps=steps,
            warmup_steps=steps // 10,
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
            model=model, args=args, train_dataset=ds, data_collator=DataCollatorWithPadding(tokenizer),
            optimizers=(torch.optim.AdamW(groups, weight_decay=0.01), None),  # + the Trainer's linear schedule
        )
        trainer.train()


def finetune(base_model: str, labels: Sequence[str], texts: Sequence[str], y: np.ndarray, cfg: TrainConfig,
             start: Callable[[], HeadClassifier]) -> Classifier:
    """Fine-tune mode's classifier: `train_checkpoint` when the base's own classifier knows every
    class, else `train_finetune` from the warm head `start()` (called only then: it trains)."""
    if is_finetuned_for(base_model, labels):
        return train_checkpoint(base_model, labels, texts, y, cfg)
    return train_finetune(base_model, start(), texts, y, cfg)


def fit_finetune_with_quality(
    base_model: str, warm: HeadClassifier, texts: Sequence[str], emb: np.ndarray, y: np.ndarray,
    groups: Sequence[int], cfg: TrainConfig, prior: Optional[LabelPrior] = None, pool: Optional[np.ndarray] = None,
) -> Tuple[Classifier, Dict[str, object]]:
    """Measure a fine-tuned probe on held-out tasks, then fine-tune the version on ALL labels
    from `warm` (the head `fit_head` trained on all of them). The probe starts from its own head,
    trained like `warm` on the label-name `prior` and the unlabeled `pool` but only on the probe's
    labels: its held-out tasks stay unseen."""
    pool = _rows(pool, emb)

    def probe_head(train: np.ndarray, test: np.ndarray) -> HeadClassifier:  # in the training process, as `warm`
        fit = trainer_process.run(fit_head, emb[train], y[train], [groups[i] for i in train], len(warm.labels),
                                  replace(head_config(cfg), eval_fraction=0.0),
                                  prior.prototypes if prior is not None else None, np.concatenate([pool, emb[test]]))
        return fit.classifier(warm.encoder, warm.labels)

    def predict_fold(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        probe = finetune(base_model, warm.labels, [texts[i] for i in train], y[train], cfg,
                         lambda: probe_head(train, test))
        return probe.predict_proba([texts[i] for i in test], cfg.num_draws).mean(-1).argmax(1)

    metrics = measure(y, groups, cfg, predict_fold, max_folds=1)  # k-fold would fine-tune k more models
    return finetune(base_model, warm.labels, texts, y, cfg, lambda: warm), metrics
