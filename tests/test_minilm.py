"""evaluation.minilm (NumPy all-MiniLM-L6-v2) and evaluation.sentences: no torch needed."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from semdialect.evaluation.minilm import (
    LINEAR_SUFFIXES,
    MODEL_PACKAGE,
    LinearContext,
    MiniLM,
    load_minilm,
)
from semdialect.evaluation.sentences import stdlib_sentences

SHORT = "Return the arc cosine of z."
LONG = "A node visitor base class that walks the abstract syntax tree and calls a visitor."

# (in, out) of each linear of a layer, in call order.
LINEAR_SHAPES = {
    "attention.self.query": (384, 384),
    "attention.self.key": (384, 384),
    "attention.self.value": (384, 384),
    "attention.output.dense": (384, 384),
    "intermediate.dense": (384, 1536),
    "output.dense": (1536, 384),
}


@pytest.fixture(scope="module")
def model() -> MiniLM:
    return load_minilm()


def real_token_count(model: MiniLM, sentence: str) -> int:
    return int(model.tokenize([sentence])[1].sum())


def test_sentences_are_fixed_distinct_english() -> None:
    sentences = stdlib_sentences()
    assert len(sentences) == 96
    assert len(set(sentences)) == 96
    assert stdlib_sentences() == sentences
    assert stdlib_sentences(64) == sentences[:64]
    for s in sentences:
        assert s[0].isupper() and s.endswith(".") and len(s.split()) >= 5
    with pytest.raises(ValueError):
        stdlib_sentences(0)
    with pytest.raises(ValueError, match="gave only"):
        stdlib_sentences(100_000)


def test_model_dimensions(model: MiniLM) -> None:
    assert (model.num_layers, model.num_heads, model.hidden_size) == (6, 12, 384)
    assert model.max_seq_length == 256
    assert model.normalize  # modules.json of the package lists a Normalize module
    assert model.linear_names == [
        f"layer.{layer}.{suffix}" for layer in range(6) for suffix in LINEAR_SUFFIXES
    ]
    weight, bias = model.linear_weights("layer.0.intermediate.dense")
    assert weight.shape == (384, 1536) and bias.shape == (1536,)
    assert not weight.flags.writeable


def test_tokenize_pads_right_and_truncates(model: MiniLM) -> None:
    ids, mask = model.tokenize([SHORT, LONG])
    n_short, n_long = mask.sum(axis=1)
    assert ids.shape == mask.shape == (2, n_long) and n_short < n_long
    assert ids[0, 0] == 101 and ids[0, n_short - 1] == 102  # [CLS] ... [SEP]
    assert (ids[0, n_short:] == 0).all() and (mask[0, n_short:] == 0).all()
    ids, mask = model.tokenize([" ".join(["word"] * 400)])
    assert ids.shape == (1, 256) and mask.all() and ids[0, -1] == 102


def test_encode_shape_dtype_unit_norm_and_determinism(model: MiniLM) -> None:
    sentences = stdlib_sentences(8)
    first = model.encode(sentences, batch_size=3)
    assert first.shape == (8, 384) and first.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(model.encode(sentences, batch_size=3), first)
    np.testing.assert_array_equal(model.encode(sentences, batch_size=8), first)


def test_embeddings_carry_meaning(model: MiniLM) -> None:
    a, b, c = model.encode(
        ["A man is playing a guitar.", "Someone plays the guitar.", "Stocks fell sharply today."]
    )
    assert a @ b > 0.6 > max(a @ c, b @ c)


def test_padding_invariance(model: MiniLM) -> None:
    alone = model.encode([SHORT])[0]
    in_batch = model.encode([LONG, SHORT, LONG])[1]
    np.testing.assert_allclose(in_batch, alone, rtol=0, atol=1e-6)
    ids, mask = model.tokenize([SHORT])
    padded_ids = np.pad(ids, ((0, 0), (0, 7)))
    padded_mask = np.pad(mask, ((0, 0), (0, 7)))
    hidden = model.forward(ids, mask)
    padded = model.forward(padded_ids, padded_mask)
    assert padded.shape == (1, ids.shape[1] + 7, 384)
    np.testing.assert_allclose(padded[:, : ids.shape[1]], hidden, rtol=0, atol=1e-6)
    assert (padded[:, ids.shape[1] :] == 0).all()


def test_hook_calls_names_shapes_and_context(model: MiniLM) -> None:
    calls: list[tuple[str, tuple[int, ...], tuple[int, ...], tuple[int, ...], LinearContext]] = []

    def hook(name, x, weight, bias, ctx):
        assert x.dtype == weight.dtype == bias.dtype == np.float32
        assert not (x.flags.writeable or weight.flags.writeable or ctx.attention.flags.writeable)
        calls.append((name, x.shape, weight.shape, bias.shape, ctx))
        return x @ weight + bias

    sentences = [SHORT, LONG]
    model.encode(sentences, linear=hook)
    assert len(calls) == 36 * len(sentences)
    for seq, sentence in enumerate(sentences):
        n = real_token_count(model, sentence)
        for index, (name, x_shape, w_shape, b_shape, ctx) in enumerate(
            calls[36 * seq : 36 * (seq + 1)]
        ):
            layer, suffix = divmod(index, 6)
            assert name == f"layer.{layer}.{LINEAR_SUFFIXES[suffix]}"
            d_in, d_out = LINEAR_SHAPES[LINEAR_SUFFIXES[suffix]]
            assert (x_shape, w_shape, b_shape) == ((n, d_in), (d_in, d_out), (d_out,))
            assert ctx.layer == layer
            assert ctx.attention.shape == (12, n, n) and ctx.attention.dtype == np.float32
            np.testing.assert_allclose(ctx.attention.sum(axis=-1), 1.0, atol=1e-6)
            assert (ctx.attention >= 0).all()


def test_fp32_hook_equals_default(model: MiniLM) -> None:
    def fp32(name, x, weight, bias, ctx):
        return x @ weight + bias

    sentences = [SHORT, LONG]
    np.testing.assert_array_equal(model.encode(sentences, linear=fp32), model.encode(sentences))


def maps_seen(perturb: bool):
    """A hook keeping each layer's ctx.attention; it scales positive outputs if ``perturb``."""
    maps: dict[int, np.ndarray] = {}

    def hook(name, x, weight, bias, ctx):
        np.testing.assert_array_equal(maps.setdefault(ctx.layer, ctx.attention), ctx.attention)
        y = x @ weight + bias
        return y + np.float32(0.25) * np.abs(y) if perturb else y

    return maps, hook


def test_context_maps_come_from_fp32_reference_pass(model: MiniLM) -> None:
    """A hook that changes the activations still sees the FP32 maps, the same for all 6 linears."""
    reference, exact_hook = maps_seen(perturb=False)
    perturbed, changing_hook = maps_seen(perturb=True)
    exact = model.encode([LONG], linear=exact_hook)
    changed = model.encode([LONG], linear=changing_hook)
    assert not np.allclose(exact, changed, atol=1e-3)  # the hook really changed the model
    assert sorted(reference) == sorted(perturbed) == list(range(6))
    for layer in range(6):
        np.testing.assert_array_equal(perturbed[layer], reference[layer])


def test_record_collects_inputs_and_outputs(model: MiniLM) -> None:
    ids, mask = model.tokenize([SHORT, LONG])
    record: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    model.forward(ids, mask, record=record)
    assert list(record) == model.linear_names
    for name, entries in record.items():
        weight, bias = model.linear_weights(name)
        assert [x.shape[0] for x, _ in entries] == list(mask.sum(axis=1))
        for x, y in entries:
            assert x.dtype == y.dtype == np.float32 and y.shape == (x.shape[0], weight.shape[1])
            np.testing.assert_array_equal(y, x @ weight + bias)


def test_hook_output_shape_is_checked(model: MiniLM) -> None:
    def bad(name, x, weight, bias, ctx):
        return (x @ weight + bias)[:, :-1]

    with pytest.raises(ValueError, match="layer.0.attention.self.query"):
        model.encode([SHORT], linear=bad)


def test_bad_inputs_rejected(model: MiniLM) -> None:
    ids, mask = model.tokenize([SHORT])
    with pytest.raises(ValueError, match="equal 2-D shapes"):
        model.forward(ids, mask[:, :-1])
    with pytest.raises(ValueError, match="only 0 and 1"):
        model.forward(ids, mask * 2)
    with pytest.raises(TypeError):
        model.encode(SHORT)  # type: ignore[arg-type]


def test_missing_package_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None)
    with pytest.raises(ModuleNotFoundError, match=MODEL_PACKAGE):
        load_minilm()


def test_missing_file_is_named(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        load_minilm(tmp_path)
