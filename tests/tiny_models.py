"""Small randomly initialised transformers, built offline inside the tests."""
from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoTokenizer, BertConfig, BertModel

from baal_backend.settings import default_model_path


def tiny_bert(path: Path, hidden: int = 32, seed: int = 0) -> Path:
    """A 1-layer BERT with the packaged MiniLM's tokenizer: another encoder, `hidden` wide."""
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=30522, hidden_size=hidden, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=2 * hidden)
    BertModel(config).save_pretrained(path)
    AutoTokenizer.from_pretrained(default_model_path()).save_pretrained(path)
    return path
