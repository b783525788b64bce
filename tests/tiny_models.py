"""Small randomly initialised transformers, built offline inside the tests."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

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


def tiny_distilbert(path: Path, texts: Sequence[str], dim: int = 32, seed: int = 0) -> Path:
    """A 1-layer DistilBERT (the design card's architecture) with a word-level tokenizer built from
    `texts`: no download, and DistilBERT's own body (no token type ids, its own module names),
    not BERT's."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import DistilBertConfig, DistilBertModel, PreTrainedTokenizerFast

    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words = sorted({w for t in texts for w in re.findall(r"\w+|[^\w\s]", t.lower())})
    vocab = {w: i for i, w in enumerate(special + words)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                            sep_token="[SEP]", mask_token="[MASK]", do_lower_case=True,
                            model_input_names=["input_ids", "attention_mask"]).save_pretrained(path)
    torch.manual_seed(seed)
    config = DistilBertConfig(vocab_size=len(vocab), dim=dim, n_layers=1, n_heads=2, hidden_dim=2 * dim,
                              max_position_embeddings=128)
    DistilBertModel(config).save_pretrained(path)
    return path
