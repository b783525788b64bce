"""Classifiers with MC-Dropout: texts -> class probabilities [n, classes, draws].

Every kind follows one rule that makes 20 draws cheap: the transformer body runs ONCE per text,
deterministically, and only the classification head is dropout-patched (baal's `patch_module`)
and run `draws` times. The tutorial's way, 20 passes through the whole network, costs 20 body
passes per text; the head is a tiny fraction of that. This is the approximation we make: the
epistemic uncertainty comes from the head's dropout only (see the README's design section).

* `HeadClassifier` ("head" mode): frozen shared `Encoder` + a small MLP head.
* `TunedClassifier` ("finetune" mode): the same head on its own fine-tuned copy of the body.
* `TransformerClassifier` (fine-tuned checkpoints used as is, and versions of the earlier
  "finetune" mode): a whole `AutoModelForSequenceClassification`.
"""
from __future__ import annotations

import json
import math
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Protocol, Sequence, Tuple

import numpy as np
import torch
from baal.bayesian.dropout import patch_module
from torch import nn
from transformers import AutoModelForSequenceClassification, PreTrainedModel

from .encoder import Encoder, clip, length_sorted_batches
from .hf import config_labels, load_tokenizer
from .prior import LabelPrior, prior_offset

META_FILE = "classifier.json"
HEAD_WEIGHTS = "head.pt"
PRIOR_FILE = "prior.npy"  # the label-name prototypes a head was trained on top of
HEAD_ON_PRIOR = "head+prior"  # the kind of a head trained on top of the label-name prior
BODY_DIR = "body"  # a TunedClassifier's fine-tuned body and tokenizer
#: Texts whose embeddings a fine-tuned version keeps (its own cache: its body differs from the
#: shared encoder's); 20,000 x 384 floats is 30 MB.
TUNED_CACHE = 20_000


class Classifier(Protocol):
    kind: str
    labels: Tuple[str, ...]

    def predict_proba(self, texts: Sequence[str], draws: int) -> np.ndarray: ...

    def save(self, path: Path) -> None: ...


def _draws_to_probs(logits: torch.Tensor, n: int, draws: int, sigmoid: bool = False) -> np.ndarray:
    """Logits [n * draws, C] (draws of a text adjacent) -> probabilities [n, C, draws]; with
    `sigmoid`, each output on its own (multi-label), else a softmax over the classes."""
    probs = (torch.sigmoid(logits.float()) if sigmoid else torch.softmax(logits.float(), dim=-1))
    probs = probs.view(n, draws, -1).permute(0, 2, 1)
    return probs.numpy()


class MCHead(nn.Module):
    """Linear -> ReLU -> MC-Dropout -> Linear.

    The dropout sits after the hidden layer only, so `draws` reuses one hidden activation per
    text and repeats just the last layer: 20 draws cost about one extra pass of a 256 x C layer.

    Training takes a `torch.Generator` for the initial weights and the dropout masks, so a run is
    reproducible from its seed whatever other threads (MC draws in `/predict`) do with torch's
    global random state.
    """

    def __init__(self, dim: int, n_classes: int, hidden: int = 256, dropout: float = 0.3,
                 generator: Optional[torch.Generator] = None):
        super().__init__()
        self.hidden = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU())
        self.out = patch_module(nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, n_classes)))
        self.dropout = dropout
        if generator is not None:
            for layer in (self.hidden[0], self.out[1]):
                _init_linear(layer, generator)

    def forward(self, x: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        if generator is None:
            return self.out(self.hidden(x))
        h = self.hidden(x)
        keep = torch.rand(h.shape, generator=generator) >= self.dropout
        return self.out[1](h * keep / (1.0 - self.dropout))

    def draws(self, x: torch.Tensor, draws: int) -> torch.Tensor:
        """Logits [n * draws, C], the draws of each text adjacent."""
        return self.out(self.hidden(x).repeat_interleave(draws, dim=0))


@torch.inference_mode()
def mc_proba(head: MCHead, emb: np.ndarray, draws: int, prior: Optional[LabelPrior] = None,
             chunk: int = 4096, sigmoid: bool = False) -> np.ndarray:
    """MC-Dropout probabilities [n, classes, draws] of a head on embeddings; with a prior, the
    head's logits are added to the prior's (the head was trained that way). `sigmoid`: per-label
    probabilities of a multi-label head (`multilabel`)."""
    out = np.empty((len(emb), head.out[1].out_features, draws), dtype=np.float32)
    for start in range(0, len(emb), chunk):
        part = np.ascontiguousarray(emb[start : start + chunk], dtype=np.float32)
        logits = head.draws(torch.from_numpy(part), draws)
        offset = prior_offset(prior, part)
        if offset is not None:
            logits = logits + torch.from_numpy(offset).repeat_interleave(draws, dim=0)
        out[start : start + len(part)] = _draws_to_probs(logits, len(part), draws, sigmoid)
    return out


def _init_linear(layer: nn.Linear, generator: torch.Generator) -> None:
    """`nn.Linear`'s own default initialisation, drawn from `generator`."""
    nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
    bound = 1.0 / math.sqrt(layer.in_features)
    nn.init.uniform_(layer.bias, -bound, bound, generator=generator)


class HeadClassifier:
    """Frozen encoder embeddings -> MC-Dropout MLP head (on top of the label-name prior, if any)."""

    kind = "head"

    def __init__(self, encoder: Encoder, head: MCHead, labels: Sequence[str], prior: Optional[LabelPrior] = None):
        self.encoder = encoder
        self.head = head.eval()
        self.labels = tuple(labels)
        self.prior = prior

    def predict_proba(self, texts: Sequence[str], draws: int) -> np.ndarray:
        return self.proba_from_embeddings(self.encoder.embed(texts), draws)

    def proba_from_embeddings(self, emb: np.ndarray, draws: int) -> np.ndarray:
        return mc_proba(self.head, emb, draws, self.prior)

    def save(self, path: Path) -> None:
        torch.save(self.head.state_dict(), path / HEAD_WEIGHTS)
        if self.prior is not None:
            np.save(path / PRIOR_FILE, self.prior.prototypes)
        (path / META_FILE).write_text(json.dumps(self._meta()))

    def _meta(self) -> Dict[str, Any]:
        meta = {"kind": self.kind, "labels": list(self.labels), "encoder": self.encoder.name_or_path}
        if self.prior is not None:
            # its own kind: code from before the prior refuses it rather than serve the head alone
            meta.update(kind=HEAD_ON_PRIOR, prior_scale=self.prior.scale)
        return meta

    @classmethod
    def from_state(cls, encoder: Encoder, state: Dict[str, Any], labels: Sequence[str],
                   prior: Optional[LabelPrior] = None) -> "HeadClassifier":
        """From a head's `state_dict` (tensors or NumPy arrays)."""
        head = MCHead(encoder.dim, len(labels))
        head.load_state_dict({k: torch.as_tensor(v) for k, v in state.items()})
        return cls(encoder, head, labels, prior)

    @classmethod
    def load(cls, path: Path, encoder: Encoder) -> "HeadClassifier":
        meta = json.loads((path / META_FILE).read_text())
        prior = None
        if meta["kind"] == HEAD_ON_PRIOR or meta.get("prior_scale") is not None:
            if not (path / PRIOR_FILE).exists():  # not FileNotFoundError: that means "the version vanished"
                raise ValueError(f"{PRIOR_FILE} is missing")
            prior = LabelPrior(np.load(path / PRIOR_FILE), meta["prior_scale"])
        return cls.from_state(encoder, torch.load(path / HEAD_WEIGHTS, weights_only=True), meta["labels"], prior)


class TunedClassifier(HeadClassifier):
    """"finetune" mode: a fine-tuned copy of the encoder's body under the head (and prior) it was
    warm-started from and trained with (`training.train_finetune`). It predicts like a head: the
    body once per text, the head's MC-Dropout draws on top."""

    kind = "finetuned-body"

    def save(self, path: Path) -> None:
        super().save(path)
        self.encoder.model.save_pretrained(path / BODY_DIR)
        self.encoder.tokenizer.save_pretrained(path / BODY_DIR)

    def _meta(self) -> Dict[str, Any]:
        return {**super()._meta(), "kind": self.kind, "encoder": BODY_DIR}

    @classmethod
    def load(cls, path: Path, max_length: int = 128) -> "TunedClassifier":
        encoder = Encoder(str(path / BODY_DIR), max_length=max_length, cache_size=TUNED_CACHE)
        saved = HeadClassifier.load(path, encoder)
        return cls(encoder, saved.head, saved.labels, saved.prior)


class _Fixed(nn.Module):
    """Stands in for a model's body and returns an output computed beforehand."""

    def __init__(self, output):
        super().__init__()
        self.output = output

    def forward(self, *args, **kwargs):
        return self.output


def patch_head(model: PreTrainedModel) -> PreTrainedModel:
    """MC-Dropout in every module of `model` except its transformer body."""
    prefix = model.base_model_prefix
    body = getattr(model, prefix)
    setattr(model, prefix, nn.Identity())  # hide the body from patch_module
    try:
        patch_module(model)
    finally:
        setattr(model, prefix, body)
    return model


class TransformerClassifier:
    """A whole Hugging Face sequence classifier, its head dropout-patched."""

    kind = "finetune"

    def __init__(self, model: PreTrainedModel, tokenizer, max_length: int = 128, batch_size: int = 32):
        self.model = patch_head(model).eval()
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.batch_size = batch_size
        self.labels = tuple(config_labels(model.config))
        self._lock = threading.Lock()  # predict swaps the body out for a moment

    @contextmanager
    def _body_replaced(self, output) -> Iterator[None]:
        prefix = self.model.base_model_prefix
        body = getattr(self.model, prefix)
        setattr(self.model, prefix, _Fixed(output))
        try:
            yield
        finally:
            setattr(self.model, prefix, body)

    @torch.inference_mode()
    def predict_proba(self, texts: Sequence[str], draws: int) -> np.ndarray:
        texts = clip(texts, self.max_length)
        out = np.empty((len(texts), len(self.labels), draws), dtype=np.float32)
        body = self.model.base_model
        with self._lock:
            self.model.eval()
            for idx in length_sorted_batches(texts, self.batch_size):
                enc = self.tokenizer(
                    [texts[i] for i in idx],
                    truncation=True,
                    max_length=self.max_length,
                    padding=True,
                    return_tensors="pt",
                )
                body_out = body(**enc)
                repeated = type(body_out)(
                    **{k: v.repeat_interleave(draws, 0) if torch.is_tensor(v) else v for k, v in body_out.items()}
                )
                inputs = {k: v.repeat_interleave(draws, 0) for k, v in enc.items()}
                with self._body_replaced(repeated):
                    logits = self.model(**inputs).logits
                out[idx] = _draws_to_probs(logits, len(idx), draws)
        return out

    def save(self, path: Path) -> None:
        self.model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)
        meta = {"kind": self.kind, "labels": list(self.labels)}
        (path / META_FILE).write_text(json.dumps(meta))

    @classmethod
    def load(cls, path: Path, max_length: int = 128) -> "TransformerClassifier":
        model = AutoModelForSequenceClassification.from_pretrained(path)
        return cls(model, load_tokenizer(str(path)), max_length=max_length)


def load_classifier_dir(path: Path, encoder: Encoder, max_length: int) -> Classifier:
    """Load whichever kind of classifier a published version directory holds."""
    kind = json.loads((Path(path) / META_FILE).read_text())["kind"]
    if kind in (HeadClassifier.kind, HEAD_ON_PRIOR):
        return HeadClassifier.load(Path(path), encoder)
    if kind == TunedClassifier.kind:
        return TunedClassifier.load(Path(path), max_length=max_length)
    return TransformerClassifier.load(Path(path), max_length=max_length)
