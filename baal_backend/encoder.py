"""The frozen base encoder: texts -> mean-pooled embeddings, computed once per text and cached.

One `Encoder` per base model is shared by every project (a fine-tuned version has its own).
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Iterator, List, Optional, Sequence

import numpy as np
import torch
from transformers import PreTrainedModel

from .hf import load_base_model, load_tokenizer


#: No token is longer than this many characters: a text cut at `max_length` times it still fills
#: `max_length` tokens, and the tokenizer never reads megabytes it would throw away.
CHARS_PER_TOKEN = 24


def clip(texts: Sequence[str], max_length: int) -> List[str]:
    """Texts cut to what `max_length` tokens can hold, before tokenizing."""
    limit = max_length * CHARS_PER_TOKEN
    return [t[:limit] for t in texts]


def length_sorted_batches(texts: Sequence[str], batch_size: int) -> Iterator[List[int]]:
    """Index batches of similar length, so dynamic padding wastes little compute."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def _weights_digest(model: torch.nn.Module) -> str:
    """A short digest of the model's architecture and weights, the same wherever it is installed:
    a version trained on one encoder is never served on top of another (a path says too little,
    the packaged default lives under the venv)."""
    digest = hashlib.blake2b(digest_size=12)
    digest.update(f"{model.config.model_type}:{model.config.hidden_size}".encode())
    for name, tensor in model.state_dict().items():  # every weight: ~0.1 s for MiniLM's 90 MB
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().flatten().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The sentence embedding: the mean of the token states under the mask, L2-normalised (what
    sentence-transformers models such as all-MiniLM-L6-v2 were trained to produce)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
    return torch.nn.functional.normalize(pooled, dim=-1)


class Encoder:
    """Tokenizer + transformer body; `embed` returns L2-normalised mean-pooled vectors.

    The cache is keyed by a hash of the text, bounded to `cache_size` entries (LRU), and makes a
    retrain on 1000 labels cost only the head's training once those texts were predicted once.
    """

    def __init__(self, name_or_path: str, max_length: int = 128, batch_size: int = 64, cache_size: int = 200_000,
                 model: Optional[PreTrainedModel] = None, tokenizer=None):
        """`model` and `tokenizer` (a fine-tuned body in memory) instead of loading `name_or_path`."""
        self.name_or_path = name_or_path
        self.max_length = max_length
        self.batch_size = batch_size
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(name_or_path)
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if self.device.type == "cuda":
            self.batch_size = max(batch_size, 512)
        self.model = (model if model is not None else load_base_model(name_or_path)).eval().to(self.device)
        self.dim: int = int(self.model.config.hidden_size)
        self.identity = _weights_digest(self.model)
        self._cache: "OrderedDict[bytes, np.ndarray]" = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    @staticmethod
    def _key(text: str) -> bytes:
        return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings [n, dim] (float32) for `texts`, computing only the ones not cached."""
        texts = clip(texts, self.max_length)
        keys = [self._key(t) for t in texts]
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        missing: List[int] = []
        with self._lock:
            for i, key in enumerate(keys):
                vec = self._cache.get(key)
                if vec is None:
                    missing.append(i)
                else:
                    self._cache.move_to_end(key)
                    out[i] = vec
        if missing:
            fresh = self._forward([texts[i] for i in missing])
            with self._lock:
                for i, vec in zip(missing, fresh):
                    out[i] = vec
                    self._cache[keys[i]] = vec
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return out

    @torch.inference_mode()
    def _forward(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings without the cache (dropout on if the body was put in train mode)."""
        result = np.empty((len(texts), self.dim), dtype=np.float32)
        for idx in length_sorted_batches(texts, self.batch_size):
            batch = self.tokenizer(
                [texts[i] for i in idx], truncation=True, max_length=self.max_length, padding=True, return_tensors="pt"
            )
            batch = batch.to(self.device)
            pooled = mean_pool(self.model(**batch).last_hidden_state, batch["attention_mask"])
            result[idx] = pooled.float().cpu().numpy()
        return result

    def dropout_draws(self, texts: Sequence[str], draws: int) -> Iterator[np.ndarray]:
        """`draws` embeddings of `texts` with the body's own dropout active: full-network MC-Dropout,
        the tutorial's costly path, kept to measure the head-only approximation against."""
        self.model.train()
        try:
            for _ in range(draws):
                yield self._forward(texts)
        finally:
            self.model.eval()
