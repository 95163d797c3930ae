"""Trace a PyTorch model's GEMM workload: every linear layer, convolution and attention matmul
of one forward pass as the ``layer,M,K,N,count,static`` rows that ``semdialect sim
--workload`` reads (``data/workloads/README.md`` §1 gives the conventions).

:func:`trace_workload` runs ONE forward pass of the model on the example inputs (under
``torch.no_grad()``, the model's train/eval mode untouched) inside a
:class:`torch.overrides.TorchFunctionMode` that sees every torch call of the model's Python
code, and forward pre/post hooks on every submodule that keep a stack of the modules whose
``forward`` is running (for the layer names). The mode is entered by the root module's last
forward pre-hook, so it is the innermost one: another tool's mode entered in a root hook (as
``fake_quantize_(..., matmuls=True)`` does) runs below it, and that tool's own quantize ops
and matmuls are not taken for the model's. Only shapes are read: the numbers are computed as
usual, the weights are never changed, and a model and inputs on the ``meta`` device work.

What becomes a GEMM row ``Y[M, N] = X[M, K] · W[K, N]`` (counts per traced forward pass):

* ``F.linear`` (every ``nn.Linear``): M = product of the input's leading dimensions (batch and
  sequence folded into M, as the shipped CSVs fold the batched classifier-free-guidance passes
  into M), K = in_features, N = out_features, count 1. Layer name: the module's qualified name
  (``blocks.0.attn.q``); an ``F.linear`` called by another module's own code is
  ``<module>.linear<i>``.
* ``F.conv1d/2d/3d`` (patch embeddings and any other convolution) as the README's im2col GEMM:
  M = batch × output positions, K = C_in/groups × kernel volume, N = C_out/groups, count =
  groups (a depthwise convolution is ``groups`` GEMMs of one channel each). Name as a linear
  (``<module>.conv<i>`` inside another module's code).
* matmuls — ``torch.matmul``/``@``, ``mm``, ``bmm``, ``addmm``, ``baddbmm``, ``addbmm``,
  ``mv`` and two-operand ``torch.einsum`` — as one 2-D GEMM per batch entry: M, K, N of the
  last two dimensions (einsum: the product of the output-only letters of each operand and of
  the contracted letters), count = the product of the broadcast batch dimensions (e.g. batch ×
  heads; grouped-query heads broadcast by ``expand`` or by size-1 dimensions count once per
  query head). When W (the second operand) has no batch dimension larger than 1, the batch is
  folded into M instead (one GEMM sharing W), as for a linear. Named
  ``<module>.matmul<i>``, or ``<module>.qk`` / ``<module>.av`` when it is attention (below).
* ``F.scaled_dot_product_attention``: two GEMMs per head and per sequence, ``<module>.qk`` =
  (M = L_q, K = head_dim, N = L_k) and ``<module>.av`` = (M = L_q, K = L_k, N = head_dim_v),
  count = batch × query heads (grouped-/multi-query K and V heads are broadcast to the query
  heads, ``enable_gqa`` or not). A causal mask does not shrink the GEMMs (the shipped CSVs
  count full attention too).
* ``nn.MultiheadAttention`` (``F.multi_head_attention_forward``, which hides its
  projections from the trace), packed as torch packs them: ``<module>.in_proj`` (one Q/K/V
  GEMM, self-attention), or ``<module>.q_proj`` + ``kv_proj`` (key is value), or
  ``q_proj``/``k_proj``/``v_proj``; then ``<module>.qk``, ``<module>.av`` (per head, key
  length including ``bias_k``/``add_zero_attn``) and ``<module>.out_proj``.

Attention matmuls written out by hand are recognised by their data flow (each tensor
carries the latest traced matmul it descends from): a matmul of two run-time operands S = A·B
whose result reaches a ``softmax`` (through scaling, masking, ``view``, …) is ``.qk``, and a
run-time matmul whose first operand comes from that softmax is ``.av``. A softmax written out
by hand (``exp``, ``sum``, divide) is recognised too: a run-time matmul whose first operand
descends element-wise from an earlier run-time matmul's result of the same shape (P = f(S),
then P·V) makes the pair ``.qk``/``.av``. Both are listed per head and per sequence like the
SDPA rows (count = the batch entries, never folded into M). A second attention in one call of the
same module is ``.qk1``/``.av1``, and so on; other matmuls are numbered ``.matmul0``, … in
call order within one call of their module.

``static`` is ``W`` when the second operand is static — a parameter or buffer of the model,
computed from parameters and buffers only (``self.weight.T``, a parametrization), or the
``weight`` of the module whose own linear/convolution it is — and
``none`` when it is produced at run time (K and V of attention). A matmul whose FIRST operand
is static (``self.weight @ x``) is written transposed, Yᵀ = Xᵀ · Wᵀ, so that W stays second.
The root module's own operations get names without a prefix (``matmul0``; a bare
``nn.Linear`` traced alone is named after its class).

Rows with equal (layer, M, K, N, static) merge by adding their counts (a module called several
times, e.g. one block reused); rows keep the order of their first call. Biases, norms,
softmax, activations, embeddings lookups (``nn.Embedding`` is not a GEMM) and element-wise
operations are not rows (README §1). A module whose ``forward`` is called directly
(``m.forward(x)``, bypassing ``__call__``) runs no hooks: its operations are named after the
enclosing module. ``conv_transpose`` and ``einsum`` with three or more operands are not traced:
they raise ``ValueError`` naming the module rather than leave GEMMs out.

No quantization happens here (see :mod:`semdialect.torch.fake_quant`).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten
from torch.utils.weak import WeakIdKeyDictionary

from semdialect.cli.output import write_output
from semdialect.sim.workloads import MAX_DIM, MAX_ROWS, Gemm
from semdialect.torch.kernels import internal_ops

__all__ = ["Workload", "trace_workload"]

#: header of a written workload CSV (the project format, ``sim/workloads.py``)
CSV_HEADER = ("layer", "M", "K", "N", "count", "static")

_T = torch.Tensor
_LINEAR = {F.linear}
_CONV = {F.conv1d: 1, F.conv2d: 2, F.conv3d: 3}
_MATMUL = {torch.matmul, _T.matmul, _T.__matmul__}
_RMATMUL = {_T.__rmatmul__}
_MM = {torch.mm, _T.mm, torch.bmm, _T.bmm, torch.mv, _T.mv}
_ADD_MM = {torch.addmm, _T.addmm, _T.addmm_, torch.baddbmm, _T.baddbmm, _T.baddbmm_}
_ADDBMM = {torch.addbmm, _T.addbmm, _T.addbmm_}  # Σ over the batch: still one GEMM a batch entry
_SOFTMAX = {F.softmax, torch.softmax, _T.softmax, torch.special.softmax}
_SDPA = {F.scaled_dot_product_attention}
_MHA = {F.multi_head_attention_forward}
_EINSUM = {torch.einsum}
_UNTRACED = {F.conv_transpose1d: "conv_transpose1d", F.conv_transpose2d: "conv_transpose2d",
             F.conv_transpose3d: "conv_transpose3d"}


@dataclass
class Workload:
    """A traced GEMM workload: ``rows`` (:class:`semdialect.sim.workloads.Gemm`, merged, in
    first-call order), the traced ``model`` class name and a ``name`` (the model class name
    unless given). M, K, N are elements; ``count`` is runs per traced forward pass."""

    rows: tuple[Gemm, ...]
    model: str
    name: str

    def gemms(self) -> list[Gemm]:
        """The rows as a list of :class:`Gemm` (what ``sim.workloads.load_workload`` of the
        written CSV returns)."""
        return list(self.rows)

    @property
    def macs(self) -> int:
        """Multiply-accumulates of one traced forward pass: Σ M·K·N·count."""
        return sum(g.macs for g in self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[Gemm]:
        return iter(self.rows)

    def csv_text(self) -> str:
        """The CSV text ``to_csv`` writes: header ``layer,M,K,N,count,static``, one row per
        GEMM, ``\\n`` line ends. ``ValueError`` when ``semdialect sim`` could not read it back
        (a layer name with a line break or surrounding spaces, more than ``MAX_ROWS`` rows)."""
        if len(self.rows) > MAX_ROWS:
            raise ValueError(f"workload {self.name}: {len(self.rows)} GEMM rows, more than the "
                             f"{MAX_ROWS} that semdialect sim reads")
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(CSV_HEADER)
        for g in self.rows:
            if g.layer != g.layer.strip() or "\n" in g.layer or "\r" in g.layer:
                raise ValueError(f"workload {self.name}: layer name {g.layer!r} has a line "
                                 "break or surrounding spaces, which a workload CSV cannot "
                                 "hold")
            writer.writerow((g.layer, g.m, g.k, g.n, g.count, g.static))
        return buf.getvalue()

    def to_csv(self, path: str | Path) -> None:
        """Write the workload CSV to ``path`` (atomically: a temporary file renamed over it;
        an existing file keeps its mode, a symlink is written through; see
        :func:`semdialect.cli.output.write_output`)."""
        data = self.csv_text().encode()

        def write(fh: BinaryIO) -> None:
            fh.write(data)

        write_output(path, write)

    def __str__(self) -> str:
        head = ("layer", "M", "K", "N", "count", "static", "MMACs")
        body = [(g.layer, str(g.m), str(g.k), str(g.n), str(g.count), g.static,
                 f"{g.macs / 1e6:.3f}") for g in self.rows]
        widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]

        def line(cells: tuple[str, ...]) -> str:
            return "  ".join(c.ljust(w) if i in (0, 5) else c.rjust(w)
                             for i, (c, w) in enumerate(zip(cells, widths, strict=True)))

        title = (f"workload {self.name} (model {self.model}): {len(self.rows)} GEMM shapes, "
                 f"{self.macs / 1e9:.6f} GMACs per forward pass")
        return "\n".join([title, line(head), *map(line, body)])


@dataclass
class _Frame:
    """One running ``forward`` call: the module's qualified name and a unique call id."""

    name: str
    call: int


@dataclass
class _Event:
    """One GEMM seen in the trace, before naming: the module call it ran in, its kind
    (``linear``, ``conv``, ``matmul``), a fixed name suffix (MHA rows, or None), its
    role (``qk``/``av`` once known, else None), the per-entry shape (m, k, n), the number of
    batch entries, whether W has a batch of its own (else the batch folds into M) and
    whether W is static."""

    frame: _Frame
    kind: str
    suffix: str | None
    m: int
    k: int
    n: int
    batch: int
    w_batched: bool
    static: bool
    role: str | None = None
    own: bool = False  # the op is the module's own (an nn.Linear's F.linear): name = module


@dataclass
class _Taint:
    """What a run-time tensor descends from: the latest traced matmul (event index) and
    whether a softmax lies between (the tensor is attention probabilities)."""

    origin: int
    probs: bool


@dataclass
class _Recorder:
    """The state of one trace: module stack, events and the tensor provenance maps."""

    root: str
    modules_by_call: dict[int, nn.Module]
    stack: list[_Frame] = field(default_factory=list)
    events: list[_Event] = field(default_factory=list)
    calls: int = 0
    static: WeakIdKeyDictionary = field(default_factory=WeakIdKeyDictionary)
    taint: WeakIdKeyDictionary = field(default_factory=WeakIdKeyDictionary)

    def frame(self) -> _Frame:
        return self.stack[-1] if self.stack else _Frame("", -1)

    def is_static(self, t: Any) -> bool:
        return isinstance(t, torch.Tensor) and (isinstance(t, nn.Parameter) or t in self.static)


def _prod(dims: Any) -> int:
    return math.prod(int(d) for d in dims)


def _tensors(tree: Any) -> list[torch.Tensor]:
    leaves, _ = tree_flatten(tree)
    return [x for x in leaves if isinstance(x, torch.Tensor)]


def _shape(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(int(d) for d in t.shape)


def _matmul_dims(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, int, int, int, bool]:
    """(m, k, n, batch entries, W batched) of ``torch.matmul`` on shapes ``a``, ``b``."""
    m, k = (1, a[0]) if len(a) == 1 else a[-2:]
    n = 1 if len(b) == 1 else b[-1]
    batch = torch.broadcast_shapes(a[:-2], b[:-2])
    return m, k, n, _prod(batch), _prod(b[:-2]) > 1


class _Mode(TorchFunctionMode):
    """The torch-function mode of one trace (see the module docstring)."""

    def __init__(self, rec: _Recorder) -> None:
        super().__init__()
        self.rec = rec

    def __torch_function__(self, func: Any, types: Any, args: tuple = (),
                           kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if internal_ops():  # a quantize kernel's own ops (fake quantization), not the model's
            return func(*args, **kwargs)
        rec = self.rec
        if func in _UNTRACED:
            raise ValueError(f"trace_workload: {_where(rec)} calls {_UNTRACED[func]}, which is "
                             "not traced (only linear, conv1d/2d/3d, matmul, einsum and "
                             "attention calls are)")
        out = func(*args, **kwargs)
        first = len(rec.events)
        taint: _Taint | None = None
        if func in _LINEAR:
            self._linear(args, kwargs)
        elif func in _CONV:
            self._conv(args, kwargs, out, _CONV[func])
        elif func in _MATMUL or func in _RMATMUL or func in _MM:
            a, b = (args[1], args[0]) if func in _RMATMUL else (args[0], args[1])
            taint = self._matmul(a, b)
        elif func in _ADD_MM or func in _ADDBMM:
            a = args[1] if len(args) > 1 else kwargs.get("batch1", kwargs.get("mat1"))
            b = args[2] if len(args) > 2 else kwargs.get("batch2", kwargs.get("mat2"))
            taint = self._matmul(a, b)
        elif func in _EINSUM:
            taint = self._einsum(args)
        elif func in _SDPA:
            self._sdpa(args, kwargs)
        elif func in _MHA:
            self._mha(args, kwargs)
        elif func in _SOFTMAX:
            taint = self._softmax(args, kwargs)
        else:
            self._propagate(args, kwargs, out)
            return out
        if taint is not None:
            for t in _tensors(out):
                rec.taint[t] = taint
        if len(rec.events) > first and all(e.static for e in rec.events[first:]) and all(
                rec.is_static(t) for t in _tensors((args, kwargs))):
            for t in _tensors(out):  # e.g. W1 @ W2 of two parameters: still static
                rec.static[t] = True
        return out

    # --- provenance -------------------------------------------------------------------------
    def _propagate(self, args: tuple, kwargs: dict, out: Any) -> None:
        """An untraced op: its outputs are static when every tensor input is, and carry the
        latest matmul taint of their inputs."""
        rec = self.rec
        ins = _tensors((args, kwargs))
        if not ins:
            return
        outs = [t for t in _tensors(out) if all(t is not i for i in ins)]
        if not outs:
            return
        if all(rec.is_static(t) for t in ins):
            for t in outs:
                rec.static[t] = True
        taints = [rec.taint[t] for t in ins if t in rec.taint]
        if taints:
            latest = max(taints, key=lambda x: (x.origin, x.probs))
            for t in outs:
                rec.taint[t] = latest

    def _softmax(self, args: tuple, kwargs: dict) -> _Taint | None:
        """A softmax of a traced run-time matmul's result: that matmul is Q·Kᵀ."""
        x = args[0] if args else kwargs.get("input")
        found = self.rec.taint.get(x) if isinstance(x, torch.Tensor) else None
        if found is None:
            return None
        event = self.rec.events[found.origin]
        if event.kind == "matmul" and event.role is None and not found.probs:
            event.role = "qk"
        return _Taint(found.origin, True)

    # --- GEMM kinds -------------------------------------------------------------------------
    def _add(self, kind: str, m: int, k: int, n: int, batch: int, w_batched: bool,
             static: bool, suffix: str | None = None, role: str | None = None,
             own: bool = False) -> int:
        self.rec.events.append(_Event(self.rec.frame(), kind, suffix, m, k, n, batch,
                                      w_batched, static, role, own))
        return len(self.rec.events) - 1

    def _own(self, cls: type | tuple[type, ...], w: torch.Tensor) -> bool:
        """True when the op is the innermost running module's own: the module is of type
        ``cls``, or ``w`` is its ``weight`` attribute (a replacement of an nn.Linear)."""
        mod = self.rec.modules_by_call.get(self.rec.frame().call)
        return isinstance(mod, cls) or (mod is not None and getattr(mod, "weight", None) is w)

    def _linear(self, args: tuple, kwargs: dict) -> None:
        x = args[0] if args else kwargs["input"]
        w = args[1] if len(args) > 1 else kwargs["weight"]
        shape = _shape(x)
        n, k = _shape(w) if w.dim() == 2 else (1, _shape(w)[0])
        own = self._own(nn.Linear, w)  # a layer's own weight is static by definition
        self._add("linear", _prod(shape[:-1]), k, n, 1, False, own or self.rec.is_static(w),
                  own=own)

    def _conv(self, args: tuple, kwargs: dict, out: torch.Tensor, dims: int) -> None:
        w = args[1] if len(args) > 1 else kwargs["weight"]
        groups = int(args[6] if len(args) > 6 else kwargs.get("groups", 1))
        o = _shape(out)
        wshape = _shape(w)
        batch = _prod(o[:-dims - 1]) if len(o) == dims + 2 else 1
        m = batch * _prod(o[-dims:])
        k = wshape[1] * _prod(wshape[2:])
        own = self._own((nn.Conv1d, nn.Conv2d, nn.Conv3d), w)
        self._add("conv", m, k, wshape[0] // groups, groups, groups > 1,
                  own or self.rec.is_static(w), own=own)

    def _gemm(self, a: torch.Tensor, b: torch.Tensor, m: int, k: int, n: int, batch: int,
              a_batched: bool, b_batched: bool) -> _Taint | None:
        """Record X·W with X = ``a``, W = ``b`` (transposed when only ``a`` is static); return
        the taint of the result (None when both operands are static)."""
        rec = self.rec
        sa, sb = rec.is_static(a), rec.is_static(b)
        if sa and not sb:  # W·X: write it as Xᵀ·Wᵀ so that the static operand is second
            idx = self._add("matmul", n, k, m, batch, a_batched, True)
            return _Taint(idx, False)
        role = None
        ta = rec.taint.get(a)
        if ta is not None and not sa and not sb:
            scores = rec.events[ta.origin]
            # P·V: P comes from a softmax, or element-wise from the scores S = Q·Kᵀ of an
            # earlier run-time matmul with P's shape (a softmax written out by hand)
            if ta.probs or (scores.kind == "matmul" and scores.role in (None, "qk")
                            and not scores.static and scores.suffix is None
                            and (scores.m, scores.n, scores.batch) == (m, k, batch)):
                role = "av"
                if scores.role is None and scores.kind == "matmul":
                    scores.role = "qk"
        idx = self._add("matmul", m, k, n, batch, b_batched, sb, role=role)
        return None if sa and sb else _Taint(idx, False)

    def _matmul(self, a: Any, b: Any) -> _Taint | None:
        sa, sb = _shape(a), _shape(b)
        m, k, n, batch, b_batched = _matmul_dims(sa, sb)
        return self._gemm(a, b, m, k, n, batch, _prod(sa[:-2]) > 1, b_batched)

    def _einsum(self, args: tuple) -> _Taint | None:
        eq = args[0]
        ops = list(args[1]) if len(args) == 2 and isinstance(args[1], list | tuple) else list(
            args[1:])
        if not isinstance(eq, str) or not all(isinstance(t, torch.Tensor) for t in ops):
            raise ValueError(f"trace_workload: {_where(self.rec)} calls einsum in the sublist "
                             "form, which is not traced (use an equation string)")
        if len(ops) == 1:
            return None  # a reduction or transpose, not a GEMM
        if len(ops) != 2:
            raise ValueError(f"trace_workload: {_where(self.rec)} calls einsum({eq!r}) with "
                             f"{len(ops)} operands; only two-operand einsums are traced")
        a, b = ops
        ins, outs = _einsum_subscripts(eq, [a.dim(), b.dim()])
        sizes: dict[str, int] = {}
        for subs, t in zip(ins, ops, strict=True):
            for c, d in zip(subs, _shape(t), strict=True):
                sizes[c] = max(sizes.get(c, 1), d)
        la, lb, lo = set(ins[0]), set(ins[1]), set(outs)
        contracted = (la & lb) - lo
        if not contracted:
            return None  # element-wise or outer product: no multiply-accumulate
        batch_letters = la & lb & lo

        def size(letters: set[str]) -> int:
            return _prod(sizes[c] for c in letters)

        b_batch = _prod(_shape(b)[ins[1].index(c)] for c in batch_letters)
        a_batch = _prod(_shape(a)[ins[0].index(c)] for c in batch_letters)
        return self._gemm(a, b, size((la - lb) & lo), size(contracted), size((lb - la) & lo),
                          size(batch_letters), a_batch > 1, b_batch > 1)

    def _sdpa(self, args: tuple, kwargs: dict) -> None:
        names = ("query", "key", "value")
        q, k, v = (args[i] if len(args) > i else kwargs[n] for i, n in enumerate(names))
        sq, sk, sv = _shape(q), _shape(k), _shape(v)
        lq, d = sq[-2:]
        lk, dv = sk[-2], sv[-1]
        bq, bk = sq[:-2], sk[:-2]
        if len(bq) >= 1 and len(bk) >= 1 and bq[-1] != bk[-1] and bk[-1] != 1:
            bk = (*bk[:-1], bq[-1])  # grouped-query attention: K/V heads serve several Q heads
        batch = _prod(torch.broadcast_shapes(bq, bk))
        rec = self.rec
        self._add("matmul", lq, d, lk, batch, True, rec.is_static(k), role="qk")
        self._add("matmul", lq, lk, dv, batch, True, rec.is_static(v), role="av")

    def _mha(self, args: tuple, kwargs: dict) -> None:
        """``F.multi_head_attention_forward``: its projections, per-head attention GEMMs and
        output projection (positional arguments as torch 2.x passes them)."""
        names = ("query", "key", "value", "embed_dim_to_check", "num_heads", "in_proj_weight",
                 "in_proj_bias", "bias_k", "bias_v", "add_zero_attn", "dropout_p",
                 "out_proj_weight", "out_proj_bias", "training", "key_padding_mask",
                 "need_weights", "attn_mask", "use_separate_proj_weight", "q_proj_weight",
                 "k_proj_weight", "v_proj_weight")
        arg = dict(zip(names, args, strict=False)) | kwargs
        q, k, v = arg["query"], arg["key"], arg["value"]
        heads, embed = int(arg["num_heads"]), int(arg["embed_dim_to_check"])
        sq, sk, sv = _shape(q), _shape(k), _shape(v)
        batch = sq[1] if len(sq) == 3 else 1
        lq, lk = sq[0], sk[0]
        rec = self.rec
        if not arg.get("use_separate_proj_weight", False):  # torch's _in_projection_packed
            static = rec.is_static(arg["in_proj_weight"])
            if q is k and k is v:  # self-attention: one packed Q/K/V linear
                self._add("linear", lq * batch, embed, 3 * embed, 1, False, static, "in_proj")
            elif k is v:  # Q, then one packed K/V linear
                self._add("linear", lq * batch, embed, embed, 1, False, static, "q_proj")
                self._add("linear", lk * batch, embed, 2 * embed, 1, False, static, "kv_proj")
            else:
                for part, rows in (("q", lq), ("k", lk), ("v", sv[0])):
                    self._add("linear", rows * batch, embed, embed, 1, False, static,
                              f"{part}_proj")
        else:
            for part, x, w in (("q", q, "q_proj_weight"), ("k", k, "k_proj_weight"),
                               ("v", v, "v_proj_weight")):
                wt = arg[w]
                self._add("linear", _shape(x)[0] * batch, _shape(wt)[1], _shape(wt)[0], 1,
                          False, rec.is_static(wt), f"{part}_proj")
        lk += int(arg.get("bias_k") is not None) + int(bool(arg.get("add_zero_attn", False)))
        hd = embed // heads
        self._add("matmul", lq, hd, lk, batch * heads, True, False, "qk", role="qk")
        self._add("matmul", lq, lk, hd, batch * heads, True, False, "av", role="av")
        wo = arg["out_proj_weight"]
        self._add("linear", lq * batch, embed, _shape(wo)[0], 1, False, rec.is_static(wo),
                  "out_proj")


def _einsum_subscripts(eq: str, ndims: list[int]) -> tuple[list[str], str]:
    """The input subscripts and the output subscript of ``eq`` with ``...`` spelt out as
    upper-case letters not used elsewhere (implicit output: the letters used once, sorted)."""
    eq = eq.replace(" ", "")
    lhs, _, rhs = eq.partition("->")
    ins = lhs.split(",")
    if len(ins) != len(ndims):
        raise ValueError(f"trace_workload: einsum equation {eq!r} does not match "
                         f"{len(ndims)} operands")
    spare = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in eq]
    n_ell = max((nd - len(s.replace("...", "")) for s, nd in zip(ins, ndims, strict=True)
                 if "..." in s), default=0)
    ell = "".join(spare[:n_ell])
    out_ins = []
    for s, nd in zip(ins, ndims, strict=True):
        if "..." in s:
            width = nd - len(s.replace("...", ""))
            s = s.replace("...", ell[n_ell - width:])
        out_ins.append(s)
    if "->" in eq:
        out = rhs.replace("...", ell)
    else:
        letters = "".join(out_ins)
        out = ell + "".join(sorted(c for c in set(letters) if letters.count(c) == 1
                                   and c not in ell))
    return out_ins, out


def _where(rec: _Recorder) -> str:
    frame = rec.frame()
    return f"module {frame.name!r}" if frame.name else f"model {rec.root}"


def _rows(rec: _Recorder) -> list[Gemm]:
    """Name every event, apply the batch rule and merge equal rows (first-call order)."""
    per_call: dict[int, dict[str, int]] = {}
    merged: dict[tuple[str, int, int, int, str], int] = {}
    for e in rec.events:
        seen = per_call.setdefault(e.frame.call, {})
        if e.suffix is not None:
            leaf = e.suffix
        elif e.own:
            leaf = ""
        elif e.role is not None:
            i = seen.get(e.role, 0)
            seen[e.role] = i + 1
            leaf = e.role if i == 0 else f"{e.role}{i}"
        else:
            i = seen.get(e.kind, 0)
            seen[e.kind] = i + 1
            leaf = f"{e.kind}{i}"
        layer = ".".join(p for p in (e.frame.name, leaf) if p) or rec.root
        if e.role is not None or e.w_batched:
            m, count = e.m, e.batch  # per head and per sequence (attention), or batched W
        else:
            m, count = e.m * e.batch, 1  # one GEMM shares W: the batch is more rows
        for key, val in (("M", m), ("K", e.k), ("N", e.n), ("count", count)):
            if not 1 <= val <= MAX_DIM:
                raise ValueError(f"trace_workload: {layer} has {key} = {val}; a workload "
                                 f"GEMM needs 1..{MAX_DIM} (an empty tensor in the example "
                                 "input?)")
        key = (layer, m, e.k, e.n, "W" if e.static else "none")
        merged[key] = merged.get(key, 0) + count
        if merged[key] > MAX_DIM:
            raise ValueError(f"trace_workload: {layer} runs {merged[key]} times, more than "
                             f"the {MAX_DIM} a workload row can count")
    return [Gemm(layer, m, k, n, count, static)
            for (layer, m, k, n, static), count in merged.items()]


def trace_workload(model: nn.Module, *example_inputs: Any, name: str | None = None,
                   **example_kwargs: Any) -> Workload:
    """The GEMM workload of ``model(*example_inputs, **example_kwargs)``: one forward pass
    under ``torch.no_grad()``, every linear, convolution and attention matmul recorded as a
    ``layer,M,K,N,count,static`` row (see the module docstring for the rules). M counts the
    rows of the traced input: the example batch is folded into M of the linears, as the
    shipped CSVs fold the batched CFG passes into M, and counted in the attention rows
    (count = batch × heads), as the shipped CSVs count CFG passes there; counts are per
    traced forward pass (multiply by the passes of a step yourself). Only shapes matter, so
    a model and inputs on the ``meta`` device trace without allocating any weight.
    ``name`` names the workload (default: the model class name).

    ``ValueError`` naming the parameter or the model when ``model`` is not an ``nn.Module``,
    its forward makes no traced GEMM, or it calls an untraced GEMM (``conv_transpose``,
    einsum of three operands); any other exception of the forward pass propagates unchanged.
    The model is not modified (its hooks are removed afterwards, also on failure)."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise ValueError(f"name: expected a non-empty string, got {name!r}")
    root = type(model).__name__
    modules = dict(model.named_modules())
    rec = _Recorder(root, {})
    for p in (*model.parameters(), *model.buffers()):
        rec.static[p] = True
    handles = []
    mode = _Mode(rec)
    depth = [0]

    def enter(_mod: nn.Module, _args: Any) -> None:
        depth[0] += 1
        if depth[0] == 1:
            mode.__enter__()

    def leave(_mod: nn.Module, _args: Any, _out: Any) -> None:
        depth[0] -= 1
        if depth[0] == 0:
            mode.__exit__(None, None, None)

    def push(fqn: str, mod: nn.Module) -> Any:
        def hook(_mod: nn.Module, _args: Any) -> None:
            rec.calls += 1
            rec.stack.append(_Frame(fqn, rec.calls))
            rec.modules_by_call[rec.calls] = mod

        return hook

    def pop(_mod: nn.Module, _args: Any, _out: Any) -> None:
        if rec.stack:
            rec.stack.pop()

    try:
        for fqn, mod in modules.items():
            handles.append(mod.register_forward_pre_hook(push(fqn, mod)))
            handles.append(mod.register_forward_hook(pop, always_call=True))
        # the mode is entered by the root's LAST pre-hook and left by its FIRST post-hook, so
        # that it is the innermost torch-function mode of the forward pass: a mode another
        # tool enters in its own root hook (fake_quantize_(..., matmuls=True)) then runs
        # below it, and its internal ops are not mistaken for the model's
        handles.append(model.register_forward_pre_hook(enter))
        handles.append(model.register_forward_hook(leave, prepend=True, always_call=True))
        with torch.no_grad():
            model(*example_inputs, **example_kwargs)
    finally:
        for h in handles:
            h.remove()
        if depth[0] > 0:  # the root's post-hook did not run (an exception in a pre-hook)
            mode.__exit__(None, None, None)
    if not rec.events:
        raise ValueError(f"model: {root}'s forward made no linear, convolution or matmul call "
                         "(nothing to trace)")
    return Workload(tuple(_rows(rec)), root, name or root)
