"""The models every project shares, each loaded once, on first use: the base encoder, the
label-name prior of each set of choices, and the base checkpoint's classifier of each set of
classes (when the base model is a fine-tuned checkpoint that knows them)."""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Optional, Tuple

from .encoder import Encoder
from .hf import is_finetuned_for, load_classifier, load_tokenizer
from .model import Classifier, TransformerClassifier
from .prior import LabelPrior
from .schema import Schema
from .settings import Settings

PRIOR_CACHE = 64  # label-name priors kept (one per set of choices)


class SharedModels:
    def __init__(self, settings: Settings):
        self.settings = settings
        self._encoder: Optional[Encoder] = None
        self._base: "OrderedDict[Tuple[str, ...], Optional[Classifier]]" = OrderedDict()  # least recently used first
        self._priors: "OrderedDict[Tuple, LabelPrior]" = OrderedDict()
        # loading takes a while: its own lock, so webhooks never wait for it to reach a project
        self._model_lock = threading.RLock()
        self._prior_lock = threading.Lock()

    @property
    def encoder(self) -> Encoder:
        with self._model_lock:
            if self._encoder is None:
                self._encoder = Encoder(self.settings.baseline_model_name, max_length=self.settings.max_length)
            return self._encoder

    def base_classifier(self, labels: Tuple[str, ...]) -> Optional[Classifier]:
        """The base model as is, when it is a fine-tuned checkpoint that knows every class (the
        last MAX_LOADED_MODELS sets of classes kept loaded)."""
        with self._model_lock:
            if labels in self._base:
                self._base.move_to_end(labels)
            else:
                base = self.settings.baseline_model_name
                clf = None
                if is_finetuned_for(base, labels):
                    model = load_classifier(base, labels, seed=self.settings.seed)
                    clf = TransformerClassifier(model, load_tokenizer(base), self.settings.max_length)
                self._base[labels] = clf
                while len(self._base) > self.settings.max_loaded_models:
                    self._base.popitem(last=False)
            return self._base[labels]

    def label_prior(self, schema: Schema) -> Optional[LabelPrior]:
        """The label-name prior of a config (LABEL_PRIOR), built once per set of choices (built
        outside the lock: a thousand choices take seconds; the last PRIOR_CACHE kept)."""
        if not self.settings.label_prior:
            return None
        key = (schema.labels, schema.descriptions)
        with self._prior_lock:
            if key in self._priors:
                self._priors.move_to_end(key)
                return self._priors[key]
        prior = LabelPrior.of(self.encoder, schema.labels, schema.descriptions)
        with self._prior_lock:
            self._priors[key] = prior
            while len(self._priors) > PRIOR_CACHE:
                self._priors.popitem(last=False)
        return prior
