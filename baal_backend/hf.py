"""Loading Hugging Face models, and matching a checkpoint's own classes to Label Studio's choices."""
from __future__ import annotations

import logging
from typing import Dict, List, Optional, Sequence

import torch
from torch import nn
from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel
from transformers.utils import logging as hf_logging

log = logging.getLogger(__name__)
hf_logging.set_verbosity_error()  # the load report on every new classifier head is noise here


class ModelLoadError(RuntimeError):
    """The base model named by BASELINE_MODEL_NAME could not be loaded."""


def _wrap(what: str, name: str, fn):
    try:
        return fn()
    except (OSError, ValueError) as exc:
        raise ModelLoadError(
            f"cannot load the {what} of {name!r}: {exc}. BASELINE_MODEL_NAME must be a local directory "
            "or a Hugging Face id that is already in the local cache (no download at run time)."
        ) from None


def load_tokenizer(name: str):
    return _wrap("tokenizer", name, lambda: AutoTokenizer.from_pretrained(name))


def load_base_model(name: str) -> PreTrainedModel:
    return _wrap("encoder", name, lambda: AutoModel.from_pretrained(name))


def config_labels(config) -> List[str]:
    """The class names a model config declares (`id2label`), in index order."""
    id2label = config.id2label or {}
    return [str(id2label[i]) for i in sorted(id2label, key=int)]


def match_labels(source: Sequence[str], target: Sequence[str]) -> Dict[int, int]:
    """{target index: source index} for each target label that `source` has (case and spaces ignored)."""
    norm = {str(s).strip().lower(): i for i, s in enumerate(source)}
    return {t: norm[str(name).strip().lower()] for t, name in enumerate(target) if str(name).strip().lower() in norm}


def is_finetuned_for(name: str, labels: Sequence[str]) -> bool:
    """True when the checkpoint's `id2label` names every one of `labels`: it can be used as is."""
    from transformers import AutoConfig

    config = _wrap("config", name, lambda: AutoConfig.from_pretrained(name))
    return len(match_labels(config_labels(config), labels)) == len(labels)


def _output_layer(model: PreTrainedModel) -> Optional[tuple]:
    """(parent module, attribute, layer) of the last Linear producing the class logits."""
    found = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and module.out_features == model.config.num_labels:
            found = name
    if found is None:
        return None
    parent_name, _, attr = found.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    return parent, attr, getattr(parent, attr)


def load_classifier(name: str, labels: Sequence[str], seed: int = 0) -> PreTrainedModel:
    """A sequence classifier whose outputs are exactly `labels`, in order.

    Classes the checkpoint already knows (matched by name) keep their trained output rows, so a
    fine-tuned checkpoint predicts usefully before any annotation; other rows start fresh.
    """
    model = _wrap("classifier", name, lambda: AutoModelForSequenceClassification.from_pretrained(name))
    own = config_labels(model.config)
    matched = match_labels(own, labels)
    layer = _output_layer(model)
    if layer is None:
        raise ModelLoadError(f"{name!r} has no linear output layer with {model.config.num_labels} outputs")
    parent, attr, old = layer
    torch.manual_seed(seed)
    new = nn.Linear(old.in_features, len(labels), bias=old.bias is not None)
    nn.init.normal_(new.weight, std=getattr(model.config, "initializer_range", 0.02))
    if new.bias is not None:
        nn.init.zeros_(new.bias)
    with torch.no_grad():
        for target, source in matched.items():
            new.weight[target] = old.weight[source]
            if old.bias is not None:
                new.bias[target] = old.bias[source]
    setattr(parent, attr, new)
    model.num_labels = len(labels)  # heads read this attribute, set from the config at init
    model.config.num_labels = len(labels)
    model.config.id2label = {i: label for i, label in enumerate(labels)}
    model.config.label2id = {label: i for i, label in enumerate(labels)}
    if matched:
        log.info("checkpoint %s: %d of %d labels matched by name", name, len(matched), len(labels))
    return model
