"""golden.video: the committed vtest.avi fixture, token layout, and the self-similarity map."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest

from semdialect.evaluation.video import (
    DEFAULT_FIXTURE,
    load_video_tokens,
    self_similarity_attention,
)


@pytest.fixture(scope="module")
def fixture() -> dict[str, np.ndarray]:
    with np.load(DEFAULT_FIXTURE, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def test_fixture_is_small_numpy_only_and_documented(fixture) -> None:
    assert DEFAULT_FIXTURE.stat().st_size <= 5 * 1024 * 1024
    frames = fixture["frames"]
    assert frames.dtype == np.uint8 and frames.shape == (16, 96, 128)
    assert hashlib.sha256(frames.tobytes()).hexdigest() == str(fixture["frames_sha256"])
    np.testing.assert_array_equal(fixture["frame_indices"], np.arange(16))
    assert "vtest.avi" in str(fixture["source"])
    assert len(str(fixture["source_sha256"])) == 64
    np.testing.assert_array_equal(fixture["source_shape"], [576, 768])
    np.testing.assert_array_equal(fixture["crop"], [0, 576, 0, 768])
    assert int(fixture["downsample"]) == 6
    assert frames.std() > 20  # a real scene, not a blank frame


def test_tokens_are_patches_in_thw_c_order(fixture) -> None:
    tokens, grid = load_video_tokens()
    assert grid == (16, 12, 16)
    assert tokens.shape == (16 * 12 * 16, 64) and tokens.dtype == np.float32
    assert tokens.min() >= 0 and tokens.max() <= 1
    frames = fixture["frames"]
    for n in (0, 1, 15, 16, 12 * 16, 12 * 16 + 17, 1234, tokens.shape[0] - 1):
        t, h, w = np.unravel_index(n, grid)
        patch = frames[t, 8 * h : 8 * h + 8, 8 * w : 8 * w + 8]
        np.testing.assert_array_equal(tokens[n], patch.reshape(64) / np.float32(255))
        assert tokens[n, 8 * 3 + 5] * 255 == pytest.approx(frames[t, 8 * h + 3, 8 * w + 5])


def test_frame_slice(fixture) -> None:
    all_tokens, (_, height, width) = load_video_tokens()
    tokens, grid = load_video_tokens(frames=slice(2, 5))
    assert grid == (3, height, width)
    per_frame = height * width
    np.testing.assert_array_equal(tokens, all_tokens[2 * per_frame : 5 * per_frame])
    with pytest.raises(ValueError, match="selects no frame"):
        load_video_tokens(frames=slice(20, 30))


def reference_attention(tokens: np.ndarray, scale: float) -> np.ndarray:
    """Slow, obvious recomputation with Python floats."""
    rows = [[float(v) for v in row] for row in tokens]
    unit = []
    for row in rows:
        mean = sum(row) / len(row)
        std = math.sqrt(sum((v - mean) ** 2 for v in row) / len(row))
        unit.append([(v - mean) / std for v in row] if std > 1e-6 else [0.0] * len(row))
    out = []
    for qi in unit:
        logits = [scale * sum(a * b for a, b in zip(qi, kj, strict=True)) for kj in unit]
        top = max(logits)
        weights = [math.exp(v - top) for v in logits]
        total = sum(weights)
        out.append([v / total for v in weights])
    return np.asarray(out)


def test_attention_rows_sum_to_one_on_video() -> None:
    tokens, grid = load_video_tokens(frames=slice(0, 4))
    attention = self_similarity_attention(tokens)
    n = tokens.shape[0]
    assert attention.shape == (1, n, n) and attention.dtype == np.float64
    np.testing.assert_allclose(attention.sum(axis=-1), 1.0, rtol=0, atol=1e-12)
    assert (attention > 0).all()
    # cos(x, x) = 1 is the largest similarity, so no key gets more than the query itself
    np.testing.assert_allclose(attention[0].diagonal(), attention[0].max(axis=1), rtol=1e-12)


@pytest.mark.parametrize("scale", [None, 4.0])
def test_attention_matches_slow_reference(scale: float | None) -> None:
    tokens, _ = load_video_tokens(frames=slice(0, 1))
    sample = np.concatenate([tokens[::9], np.zeros((1, 64), np.float32)])  # + an all-zero patch
    expected = reference_attention(sample, 1 / 8 if scale is None else scale)
    np.testing.assert_allclose(self_similarity_attention(sample, scale)[0], expected, atol=1e-14)
    # the zero token has similarity 0 with every key: its row is uniform
    np.testing.assert_allclose(expected[-1], 1 / len(sample), atol=1e-15)


def test_attention_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="1 GiB"):
        self_similarity_attention(np.ones((11586, 64), np.float32))
    with pytest.raises(ValueError, match=r"\(N, d\)"):
        self_similarity_attention(np.ones(64))
    with pytest.raises(ValueError, match="finite"):
        self_similarity_attention(np.full((3, 64), np.nan))
