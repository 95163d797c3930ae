"""cocotb tests of :class:`rtl.gemm_core.GemmCore` on Verilator: GEMMs, quantize commands, a
run-time second operand and the SPEC §6 decomposition, bit-exact with the golden model.

Run through :func:`tb.runner.run_cocotb` (see ``tests/test_rtl_gemm_verilator.py``). Settings
arrive in the environment:

``GEMM_CONFIG``   JSON of the :class:`semdialect.config.Config` fields the Verilog was
                  generated from (required; :func:`tb.gemm_run.config_env`)
``GEMM_MAX_KB``   the core's ``max_kb`` (required; ``max_m``/``max_n`` are ``GEMM_MAX_M``/``N``)
``GEMM_CASES``    JSON list of cases ``{"kind", "m", "n", "kb", "data", "seed"[, "salient"]
                  [, "cycles"]}``. ``kind`` (default ``gemm``) and the commands each sends:
                  :func:`tb.gemm_ref.case_commands`. ``data`` is ``random``, ``adversarial``,
                  ``nan`` (NaN/Inf blocks in X), ``max`` (±65504 everywhere), ``zeros`` or
                  ``seda`` (random SeDA candidate masks); ``salient``: the salient rows
                  (:func:`tb.gemm_ref.salient_rows`). ``cycles``, when given, is the list of
                  the expected no-stall cycles of the case's commands (an int for a one-command
                  case); the caller takes them from the cycle model
                  (:mod:`semdialect.sim.cycles`: the testbench sits below the models and does
                  not import them)
``GEMM_CYCLES``   JSON file the no-stall test writes ``[{op, add, M, N, K, data, cycles,
                  expected}, …]`` to (one record per command, K in elements, N null for a
                  quantize command)
``GEMM_CORRUPT``  ``1``: corrupt one expected value (a self-test: the run must fail)

What is checked (every expected value comes from :mod:`golden` through :mod:`tb.gemm_ref`):

* ``gemm``: every Y element and its ``invalid`` flag (``golden.gemm``/``gemm_quantized``), the
  ``mask`` of every ``y`` beat, ``last`` on the final beat only; with salient rows, every ``r``
  beat: its ``mask`` = the lanes' salient bits, the residual of each salient lane
  (``golden.decompose.residual``; a NaN/Inf block's residual is the block).
* ``add``: a GEMM with ``add`` and a random FP32 addend on ``yin`` (normal and subnormal
  values, ±0, ±Inf, exact negations of the product — cancellation to +0 —, ±FP32 max —
  overflow —, half-ulp ties) with random ``invalid`` flags: Y = RNE_fp32(addend + X·W) as
  ``golden.DecomposedParts.combine`` adds, ``invalid`` = the GEMM's | the addend's.
* ``quantize``: every ``q`` lane inside M: codes, SE field, dialect, ``invalid`` as
  ``golden.quantize(X, select=cfg.select, candidates=masks)``; ``last`` on the final beat only.
* ``dynamic``: the quantize command on Wᵀ as above, then the GEMM whose ``w`` beats are the
  ``q`` output regrouped per column tile: Y = ``gemm_quantized(quantize(X), quantize(Wᵀ))``
  (the activation quantization of Wᵀ; for ``lut`` equal to ``quantize_weights(W)``).
* ``decompose``: the GEMM over all rows with the salient rows flagged (Y = the main part),
  its residual rows on ``r``; then the GEMM with ``add`` over those residual rows (mask all
  ones, salient 0) with ``yin`` = the main outputs of the salient rows. The main Y with the
  salient rows replaced equals ``golden.decomposed_linear(...).y`` bit for bit.

A rotating configuration (``rotate = "hadamard"``, SPEC §11; the core rotates every frontend
lane) expects golden's rotated values (:mod:`tb.gemm_ref`): X in the activation role, W and a
quantize command's rows in the weight role, the residuals in the rotated basis, and the X of a
GEMM with ``add`` taken as already rotated (the rotators pass it unchanged).

The no-stall and random-stall tests feed each command's outputs into the next command of the
case (``q`` → ``w``, ``r`` and ``y`` → ``x`` and ``yin``); the back-to-back test sends every
command at once with the golden-derived beats (equal to those outputs, which are checked).

Protocol (:class:`tb.drivers.GemmHarness`; stream orders in ``rtl/gemm_core.py`` and
:mod:`tb.gemm_ref`): inputs are driven after the falling clock edge, and after ``ReadOnly`` the
outputs are sampled — the values the next rising edge acts on. Cycle numbers count falling
edges; a command's cycles are those from its transfer through its last output's transfer
(``y`` for a GEMM, ``q`` for a quantize command), both included (:mod:`semdialect.sim.cycles`
models them).
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable
from dataclasses import dataclass, replace

import cocotb
import numpy as np

from semdialect import golden
from semdialect.config import Config
from semdialect.golden.formats import DialectFormat
from semdialect.rtl.gemm_core import GemmCore
from semdialect.rtl.layouts import OP_GEMM, OP_QUANTIZE
from semdialect.tb.drivers import GemmHarness, GemmOutcome
from semdialect.tb.gemm_ref import (
    DrainOrder,
    QuantizedFields,
    activation_beats,
    case_commands,
    drain_order,
    frontend_format,
    gemm_expected,
    pack,
    quantized_fields,
    residual_expected,
    residual_rows,
    salient_lanes,
    salient_rows,
    weight_beats,
    weight_beats_from_fields,
    x_beat_rows,
    yin_beats,
)
from semdialect.tb.packing import LayoutCodec

CONFIG: Config = Config(**json.loads(os.environ["GEMM_CONFIG"]))
#: the core rotates its frontend lanes (SPEC §11)
ROTATES = CONFIG.rotation() is not None
CORE = GemmCore.from_config(
    CONFIG,
    max_m=int(os.environ.get("GEMM_MAX_M", "255")),
    max_n=int(os.environ.get("GEMM_MAX_N", "255")),
    max_kb=int(os.environ["GEMM_MAX_KB"]),
)
CASES: list[dict] = json.loads(os.environ.get("GEMM_CASES", "[]"))
CYCLES_FILE = os.environ.get("GEMM_CYCLES")
CORRUPT = os.environ.get("GEMM_CORRUPT") == "1"

#: payload layout of every stream of the core
LAYOUT = {name: CORE.signature.members[name].signature.members["payload"].shape
          for name in ("x", "w", "y", "yin", "q", "r")}
CODEC = {name: LayoutCodec(LAYOUT[name]) for name in ("y", "q", "r")}
LANES = CONFIG.lanes
DRAIN = CONFIG.drain_width

_FP16_MAX = 65504.0
_FP16_TINY = 2.0**-24


def make_data(case: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """X (M×K, float16), W (K×N, float32) and SeDA masks for one case (all from the seed)."""
    m, n, kb, kind = case["m"], case["n"], case["kb"], case["data"]
    k = kb * CONFIG.block
    rng = np.random.default_rng(case["seed"])
    row_scale = np.exp2(rng.integers(-12, 9, size=(m, 1)))
    x = rng.standard_normal((m, k)) * row_scale
    w = rng.standard_normal((k, n)) * np.exp2(rng.integers(-6, 4, size=(1, n)))
    masks = None
    b = CONFIG.block
    if kind == "zeros":
        x[:] = 0.0
        x[::2] = -0.0
    elif kind == "max":
        x = np.where(rng.random((m, k)) < 0.5, -_FP16_MAX, _FP16_MAX)
        w = np.where(rng.random((k, n)) < 0.5, -_FP16_MAX, _FP16_MAX)
    elif kind in ("adversarial", "nan"):
        blocks = x.reshape(m, kb, b)
        for r in range(m):
            for j in range(kb):
                pick = rng.integers(0, 8)
                if pick == 0:
                    blocks[r, j] = 0.0  # all-zero block
                elif pick == 1:
                    blocks[r, j] = -0.0  # all −0: codes 8, contribution +0
                elif pick == 2:
                    blocks[r, j] = np.sign(blocks[r, j]) * _FP16_MAX  # maximum magnitudes
                elif pick == 3:
                    blocks[r, j] = rng.integers(-1024, 1025, b) * _FP16_TINY  # subnormals
                elif pick == 4:
                    blocks[r, j] *= 1e-3
                    blocks[r, j, rng.integers(0, b)] = 60000.0  # one outlier
        if kb >= 2:  # exact cancellation: the second block is the negated first, W repeats
            x[0, b : 2 * b] = -x[0, :b]
            w[b : 2 * b, 0] = w[:b, 0]
        if n >= 2:
            w[:b, 1] = 0.0  # an all-zero weight block
        if n >= 3:
            w[:, -1] = np.where(rng.random(k) < 0.5, -_FP16_MAX, _FP16_MAX)
        if kind == "nan":
            specials = (np.nan, np.inf, -np.inf)
            for r in range(0, m, 2):
                j = int(rng.integers(0, kb))
                x[r, j * b + int(rng.integers(0, b))] = specials[r % 3]
    elif kind == "seda":
        book = CONFIG.book()
        variants = rng.integers(0, book.variants, size=(m, kb))
        masks = np.stack([book.variant_mask(int(v)) for v in variants.reshape(-1)]).reshape(
            m, kb, book.size
        )
    elif kind != "random":
        raise ValueError(f"unknown data kind {kind!r}")
    with np.errstate(over="ignore"):
        x16 = x.astype(np.float16)
    return x16, w.astype(np.float32), masks


# -- one command: its beats and its expected outputs ---------------------------------------------


@dataclass
class Decoded:
    """A command's outputs, decoded: Y (M, N) uint32 bits and ``invalid`` flags (GEMM), the
    quantized blocks (quantize command), the residual rows (M, K) uint16 (zeros where a row
    is not salient)."""

    y: np.ndarray | None = None
    invalid: np.ndarray | None = None
    q: QuantizedFields | None = None
    r: np.ndarray | None = None


@dataclass
class Step:
    """One command of a case: input beats and the expected outputs."""

    label: str
    op: str  #: ``gemm`` or ``quantize``
    m: int
    n: int
    kb: int
    add: int
    inputs: dict[str, list[int]]  #: ``cmd``, ``x``, ``w``, ``yin`` beats
    x_rows: np.ndarray  #: (x beats, L) row of every lane, −1 past M
    x_kb: np.ndarray  #: (x beats,) k-block of every x beat
    order: DrainOrder | None = None  #: y beat order (GEMM)
    want_y: np.ndarray | None = None  #: (M, N) uint32
    want_invalid: np.ndarray | None = None  #: (M, N) bool
    want_q: QuantizedFields | None = None
    salient: np.ndarray | None = None  #: (M,) bool, rows flagged salient
    want_r: np.ndarray | None = None  #: (M, K) uint16 residuals (only salient rows are used)
    expected_cycles: int | None = None
    #: builds this step's replacement inputs from the earlier steps' decoded outputs
    feed: Callable[[list[Decoded]], dict[str, list[int]]] | None = None
    #: a check of the whole case once every step ran (given every step's decoded outputs)
    final: Callable[[list[Decoded]], None] | None = None

    @property
    def counts(self) -> dict[str, int]:
        """Output beats this command produces."""
        if self.op == "quantize":
            return {"q": len(self.x_kb)}
        r_beats = 0
        if self.salient is not None:
            r_beats = int(salient_lanes(self.salient, self.x_rows).any(axis=1).sum())
        return {"y": len(self.order), "r": r_beats}

    def corrupted(self) -> Step:
        """A copy with one expected value wrong (the self-test)."""
        if self.want_y is not None:
            want = self.want_y.copy()
            want[self.m // 2, self.n // 2] ^= 1
            return replace(self, want_y=want)
        codes = self.want_q.codes.copy()
        codes[self.m // 2, 0] ^= 1
        return replace(self, want_q=replace(self.want_q, codes=codes))


def _command(op: str, m: int, n: int, kb: int, add: int) -> int:
    return pack(CORE.cmd_layout, {"m": m, "n": n, "kb": kb,
                                  "op": OP_QUANTIZE if op == "quantize" else OP_GEMM, "add": add})


def _dialect_format(select: str) -> DialectFormat:
    return DialectFormat(CONFIG.book(), select)


def gemm_step(label: str, x16: np.ndarray, w_beats: list[int], n: int, want_y: np.ndarray,
              want_invalid: np.ndarray, *, masks: np.ndarray | None = None,
              salient: np.ndarray | None = None, add: int = 0,
              yin: list[int] | None = None) -> Step:
    """A GEMM command on X = ``x16`` (M, K) with the given ``w`` beats."""
    m, k = x16.shape
    kb = k // CONFIG.block
    rows, kbs = x_beat_rows(m, kb, CONFIG.rows, LANES)
    flags = None
    want_r = None
    if salient is not None and len(salient):
        flags = np.zeros(m, bool)
        flags[salient] = True
        want_r = residual_expected(x16, CONFIG, masks)
    x = activation_beats(x16, CONFIG, LAYOUT["x"], masks, salient, pad_seed=m * 131 + k)
    return Step(label, "gemm", m, n, kb, add,
                {"cmd": [_command("gemm", m, n, kb, add)], "x": x, "w": w_beats,
                 "yin": yin or []},
                rows, kbs, drain_order(m, n, CONFIG.rows, CONFIG.tile_cols, DRAIN),
                want_y, want_invalid, salient=flags, want_r=want_r)


def quantize_step(label: str, x16: np.ndarray, masks: np.ndarray | None = None) -> Step:
    """A quantize command on the rows of ``x16`` (M, K)."""
    m, k = x16.shape
    kb = k // CONFIG.block
    rows, kbs = x_beat_rows(m, kb, CONFIG.rows, LANES)
    x = activation_beats(x16, CONFIG, LAYOUT["x"], masks, pad_seed=m * 137 + k)
    return Step(label, "quantize", m, 0, kb, 0,
                {"cmd": [_command("quantize", m, 0, kb, 0)], "x": x},
                rows, kbs, want_q=quantized_fields(x16, CONFIG, masks))


def prepare(case: dict) -> list[Step]:
    """The commands of ``case`` (:func:`tb.gemm_ref.case_commands`) with golden-derived input
    beats and golden expected outputs."""
    kind = case.get("kind", "gemm")
    x, w, masks = make_data(case)
    m, n, kb = case["m"], case["n"], case["kb"]
    tag = f"{kind} {m}x{n}x{kb * CONFIG.block} {case['data']} seed {case['seed']}"
    salient = salient_rows(case.get("salient"), m, case["seed"])
    if kind == "gemm":
        want, flags, qw = gemm_expected(x, w, CONFIG, masks)
        ws = weight_beats(qw, m, CONFIG, LAYOUT["w"])
        steps = [gemm_step(tag, x, ws, n, want, flags, masks=masks, salient=salient)]
    elif kind == "add":
        steps = [_add(tag, x, w, masks, case["seed"])]
    elif kind == "quantize":
        steps = [quantize_step(tag, x, masks)]
    elif kind == "dynamic":
        steps = _dynamic(tag, x, w, masks)
    elif kind == "decompose":
        steps = _decompose(tag, x, w, masks, salient)
    else:
        raise ValueError(f"case kind {kind!r}")
    expected = case.get("cycles")
    if expected is not None:
        expected = expected if isinstance(expected, list) else [expected]
        assert len(expected) == len(steps), f"{tag}: {len(expected)} cycle counts"
        steps = [replace(s, expected_cycles=c) for s, c in zip(steps, expected, strict=True)]
    commands = case_commands(case)
    assert [(s.op, s.m, s.kb, s.add) for s in steps] == [
        (c["op"], c["m"], c["kb"], c["add"]) for c in commands], tag
    return steps


def _add(tag: str, x: np.ndarray, w: np.ndarray, masks: np.ndarray | None,
         seed: int) -> Step:
    """A GEMM whose outputs are added to a random FP32 addend (see the module docstring)."""
    m, n = x.shape[0], w.shape[1]
    # a rotating core takes the X of a GEMM with add as already rotated (the residual pass)
    want, flags, qw = gemm_expected(x, w, CONFIG, masks, x_rotated=ROTATES)
    product = want.view(np.float32)
    rng = np.random.default_rng([seed, 0xADD])
    addend = (rng.standard_normal((m, n)) * np.exp2(rng.integers(-30, 30, (m, n)))).astype(
        np.float32)
    pick = rng.integers(0, 9, (m, n))
    big = np.float32(np.finfo(np.float32).max)
    with np.errstate(over="ignore"):
        special = {
            0: -product,  # exact cancellation: +0
            1: np.full((m, n), -0.0, np.float32),
            2: np.where(product < 0, -big, big),  # overflow to ±Inf unless the product is 0
            3: (rng.integers(-1000, 1001, (m, n)) * 2.0**-149).astype(np.float32),  # subnormal
            4: np.where(rng.random((m, n)) < 0.5, -np.inf, np.inf).astype(np.float32),
            5: product * np.float32(2.0**-24),  # half an ulp of the product: a tie
            6: product * np.float32(-(2.0**-24)),
        }
    for key, values in special.items():
        addend[pick == key] = values[pick == key]
    addend_invalid = rng.random((m, n)) < 0.2
    total = golden.DecomposedParts(main=addend, residual=product,
                                   salient=np.arange(m)).combine()  # RNE_fp32(addend + XW)
    order = drain_order(m, n, CONFIG.rows, CONFIG.tile_cols, DRAIN)
    return gemm_step(f"{tag}: + addend", x, weight_beats(qw, m, CONFIG, LAYOUT["w"]), n,
                     np.asarray(total, np.float32).view(np.uint32), flags | addend_invalid,
                     masks=masks, add=1,
                     yin=yin_beats(addend.view(np.uint32), addend_invalid, order, LAYOUT["yin"]))


def _dynamic(tag: str, x: np.ndarray, w: np.ndarray, masks: np.ndarray | None) -> list[Step]:
    """Quantize Wᵀ on the core, then the GEMM with those blocks as the second operand."""
    m = x.shape[0]
    n = w.shape[1]
    with np.errstate(over="ignore"):
        wt16 = np.ascontiguousarray(w.astype(np.float16).T)  # (N, K)
    first = quantize_step(f"{tag}: quantize Wᵀ", wt16)
    # rotating: the quantize command's rows in the weight role (SPEC §11)
    qw_dyn = golden.quantize(wt16, frontend_format(CONFIG, "weight"), block=CONFIG.block)
    if CONFIG.select == "lut":  # golden's claim the run-time operand rests on
        qw_static = golden.quantize_weights(w, _dialect_format("lut"), block=CONFIG.block,
                                            rotate=CONFIG.rotation())
        assert np.array_equal(qw_dyn.codes, qw_static.codes)
        assert np.array_equal(qw_dyn.se, qw_static.se)
        assert np.array_equal(qw_dyn.dialect, qw_static.dialect)
    want, flags, _ = gemm_expected(x, w, CONFIG, masks, qw=qw_dyn)
    ws = weight_beats_from_fields(first.want_q, m, CONFIG, LAYOUT["w"])
    second = gemm_step(f"{tag}: GEMM with the quantized Wᵀ", x, ws, n, want, flags,
                       masks=masks)

    def feed(done: list[Decoded]) -> dict[str, list[int]]:
        return {**second.inputs, "w": weight_beats_from_fields(done[0].q, m, CONFIG,
                                                               LAYOUT["w"])}

    return [first, replace(second, feed=feed)]


def _decompose(tag: str, x: np.ndarray, w: np.ndarray, masks: np.ndarray | None,
               salient: np.ndarray) -> list[Step]:
    """SPEC §6 on the core: the main GEMM with the salient rows flagged, then the residual
    rows' GEMM added to the main outputs of those rows."""
    if not np.isfinite(x.astype(np.float32)).all():
        raise ValueError(f"{tag}: the decomposition's golden model takes finite X only")
    m, k = x.shape
    n = w.shape[1]
    cand = masks if CONFIG.select == "lut" else None
    dec = golden.decomposed_linear(x, w, CONFIG.book(), salient=salient, select=CONFIG.select,
                                   block=CONFIG.block, candidates=cand, rotate=CONFIG.rotation())
    main_bits = np.asarray(dec.parts.main, np.float32).view(np.uint32)
    final_bits = np.asarray(dec.y, np.float32).view(np.uint32)
    no_flags = np.zeros((m, n), bool)
    qw = golden.quantize_weights(w, _dialect_format("lut"), block=CONFIG.block,
                                 rotate=CONFIG.rotation())
    first = gemm_step(f"{tag}: main GEMM, {len(salient)} salient rows", x,
                      weight_beats(qw, m, CONFIG, LAYOUT["w"]), n, main_bits, no_flags,
                      masks=masks, salient=salient)

    def check_final(done: list[Decoded]) -> None:
        y = done[0].y.copy()
        if len(salient):
            y[salient] = done[1].y
        bad = np.argwhere(y != final_bits)
        assert not len(bad), f"{tag}: decomposed Y differs from golden at {bad[:8].tolist()}"

    if not len(salient):
        return [replace(first, final=check_final)]
    # the residuals expected on r are those golden's decomposed_linear quantizes
    golden_r = golden.decompose.residual(x[salient], golden.quantize(
        x[salient], frontend_format(CONFIG), block=CONFIG.block,
        candidates=None if cand is None else cand[salient]))
    assert np.array_equal(first.want_r[salient], golden_r.view(np.uint16)), (
        f"{tag}: residual_expected disagrees with golden.decompose.residual")
    r16 = first.want_r[salient].view(np.float16)
    s = len(salient)
    order = drain_order(s, n, CONFIG.rows, CONFIG.tile_cols, DRAIN)
    second = gemm_step(
        f"{tag}: residual GEMM + main", r16, weight_beats(qw, s, CONFIG, LAYOUT["w"]), n,
        final_bits[salient], no_flags[salient], add=1,
        yin=yin_beats(main_bits[salient], no_flags[salient], order, LAYOUT["yin"]))

    def feed(done: list[Decoded]) -> dict[str, list[int]]:
        rows16 = done[0].r[salient].view(np.float16)
        return {**second.inputs,
                "x": activation_beats(rows16, CONFIG, LAYOUT["x"], pad_seed=s * 131 + k),
                "yin": yin_beats(done[0].y[salient], done[0].invalid[salient], order,
                                 LAYOUT["yin"])}

    return [first, replace(second, feed=feed, final=check_final)]


# -- checks ---------------------------------------------------------------------------------------


def _lane_fields(raw: dict[str, np.ndarray], count: int, name: str) -> np.ndarray:
    """(beats, count) array of the ``lanes.<i>.<name>`` leaves (or (beats, count, elems))."""
    return np.stack([raw[f"lanes.{i}.{name}"] for i in range(count)], axis=1)


def check(step: Step, beats: dict[str, list[int]]) -> Decoded:
    """Every output of ``step`` against its expectation; returns them decoded."""
    counts = step.counts
    for name, want in counts.items():
        assert len(beats.get(name, [])) == want, (
            f"{step.label}: {len(beats.get(name, []))} {name} beats, expected {want}")
    out = Decoded()
    if step.op == "quantize":
        out.q = _check_q(step, beats["q"])
        return out
    out.y, out.invalid = _check_y(step, beats["y"])
    if counts["r"]:
        out.r = _check_r(step, beats["r"])
    return out


def _check_y(step: Step, raws: list[int]) -> tuple[np.ndarray, np.ndarray]:
    raw = CODEC["y"].unpack(raws)
    mask = CODEC["y"].unpack_bits(raws, "mask")
    order = step.order
    assert np.array_equal(mask, order.mask), (
        f"{step.label}: y masks differ in beats {np.argwhere((mask != order.mask).any(1))[:8]}")
    lasts = raw["last"].tolist()
    assert lasts == [0] * (len(order) - 1) + [1], f"{step.label}: y.last must mark the final beat"
    shape = (step.m, step.n)
    got = order.assemble(_lane_fields(raw, DRAIN, "value").astype(np.uint32), shape)
    inv = order.assemble(_lane_fields(raw, DRAIN, "invalid").astype(bool), shape)
    want = step.want_y
    bad = np.argwhere(got != want)
    detail = [
        f"Y[{r},{c}] got {got[r, c]:08x} ({got[r, c:c + 1].view(np.float32)[0]!r}) want "
        f"{want[r, c]:08x} ({want[r, c:c + 1].view(np.float32)[0]!r})"
        for r, c in bad[:8]
    ]
    assert not len(bad), (f"{step.label}: {len(bad)} of {got.size} outputs differ:\n"
                          + "\n".join(detail))
    assert np.array_equal(inv, step.want_invalid), (
        f"{step.label}: invalid flags differ at {np.argwhere(inv != step.want_invalid)[:8]}")
    return got, inv


def _check_q(step: Step, raws: list[int]) -> QuantizedFields:
    raw = CODEC["q"].unpack(raws)
    lasts = raw["last"].tolist()
    assert lasts == [0] * (len(raws) - 1) + [1], f"{step.label}: q.last must mark the final beat"
    b = CONFIG.block
    m, kb = step.m, step.kb
    codes = np.zeros((m, kb, b), np.int64)
    se = np.zeros((m, kb), np.int64)
    dialect = np.zeros((m, kb), np.int64)
    invalid = np.zeros((m, kb), bool)
    lane_codes = _lane_fields(raw, LANES, "codes")
    lane_se = _lane_fields(raw, LANES, "se")
    has_id = "lanes.0.dialect" in raw
    lane_dialect = _lane_fields(raw, LANES, "dialect") if has_id else np.zeros_like(lane_se)
    lane_invalid = _lane_fields(raw, LANES, "invalid")
    ok = step.x_rows >= 0  # lanes past M are don't care
    beat, lane = np.nonzero(ok)
    rows, kbs = step.x_rows[beat, lane], step.x_kb[beat]
    codes[rows, kbs] = lane_codes[beat, lane]
    se[rows, kbs] = lane_se[beat, lane]
    dialect[rows, kbs] = lane_dialect[beat, lane]
    invalid[rows, kbs] = lane_invalid[beat, lane].astype(bool)
    got = QuantizedFields(codes.reshape(m, kb * b), se, dialect, invalid)
    want = step.want_q
    for name in ("codes", "se", "dialect", "invalid"):
        g, w = getattr(got, name), getattr(want, name)
        bad = np.argwhere(g != w)
        assert not len(bad), (f"{step.label}: q {name} differs at {len(bad)} places, e.g. "
                              f"(row, {'element' if name == 'codes' else 'k-block'}) "
                              f"{bad[:6].tolist()}: got {g[tuple(bad[0])]} want {w[tuple(bad[0])]}")
    return got


def _check_r(step: Step, raws: list[int]) -> np.ndarray:
    flagged = salient_lanes(step.salient, step.x_rows)
    mask, got = residual_rows(CODEC["r"], raws, flagged, step.x_rows, step.x_kb, step.m,
                              CONFIG.block)
    assert np.array_equal(mask, flagged[flagged.any(axis=1)]), f"{step.label}: r masks differ"
    want = np.where(step.salient[:, None], step.want_r, 0).astype(np.uint16)
    bad = np.argwhere(got != want)
    assert not len(bad), (f"{step.label}: {len(bad)} residual elements differ, e.g. at "
                          f"{bad[:6].tolist()}: got {got[tuple(bad[0])]:04x} want "
                          f"{want[tuple(bad[0])]:04x}")
    return got


# -- tests ----------------------------------------------------------------------------------------


def _limit(steps: list[Step]) -> int:
    """A deadlock guard (not a model): cycles allowed for ``steps`` even at the slowest
    random stalls (every beat at least C_sel cycles, 30× slower)."""
    beats = sum(len(words) for s in steps for words in s.inputs.values())
    beats += sum(count for s in steps for count in s.counts.values())
    return 5_000 + 30 * CONFIG.selector_cycles * beats


def _record(step: Step, case: dict, cycles: int) -> dict:
    return {"op": step.op, "add": step.add, "M": step.m,
            "N": step.n if step.op == "gemm" else None, "K": step.kb * CONFIG.block,
            "data": case["data"], "cycles": cycles, "expected": step.expected_cycles}


async def run_chained(h: GemmHarness, case: dict, rng: random.Random | None, *,
                      corrupt: bool = False, records: list[dict] | None = None,
                      **stalls: float) -> None:
    """Run ``case`` command by command, each command's inputs built from the earlier
    commands' outputs where it depends on them; check everything."""
    done: list[Decoded] = []
    steps = prepare(case)
    for index, step in enumerate(steps):
        if corrupt and index == 0:
            step = step.corrupted()
        inputs = step.feed(done) if step.feed is not None else step.inputs
        out: GemmOutcome = await h.run(inputs, step.counts, rng, limit=_limit([step]),
                                       **stalls)
        done.append(check(step, out.beats))
        (cycles,) = out.command_cycles()
        if records is not None:
            records.append(_record(step, case, cycles))
            h.dut._log.info("%s: %d cycles (expected %s)", step.label, cycles,
                            step.expected_cycles)
        if step.final is not None:
            step.final(done)


@cocotb.test()
async def test_gemm_no_stall(dut) -> None:
    """Every case alone, all streams always valid/ready: bit-exact outputs and, where the
    case gives them, exactly the expected cycles of every command; the measured cycles go to
    ``GEMM_CYCLES``."""
    h = GemmHarness(dut, CORE.signature)
    await h.reset()
    records: list[dict] = []
    for index, case in enumerate(CASES):
        await run_chained(h, case, None, corrupt=CORRUPT and index == 0, records=records)
    if CYCLES_FILE:
        with open(CYCLES_FILE, "w") as fh:
            json.dump(records, fh, indent=1)
    wrong = [r for r in records if r["expected"] is not None and r["cycles"] != r["expected"]]
    assert not wrong, f"measured cycles differ from the expected (cycle model) ones: {wrong}"


@cocotb.test()
async def test_gemm_back_to_back(dut) -> None:
    """Every command of every case as one command stream without gaps (golden-derived beats):
    each command's outputs are bit-exact and each command is accepted exactly its expected
    cycles (where given) after the previous one."""
    h = GemmHarness(dut, CORE.signature)
    await h.reset()
    steps = [step for case in CASES for step in prepare(case)]
    inputs: dict[str, list[int]] = {"cmd": [], "x": [], "w": [], "yin": []}
    counts = {"y": 0, "q": 0, "r": 0}
    for step in steps:
        for name in inputs:
            inputs[name] += step.inputs.get(name, [])
        for name, count in step.counts.items():
            counts[name] += count
    out = await h.run(inputs, counts, None, limit=_limit(steps))
    start = {"y": 0, "q": 0, "r": 0}
    done: list[Decoded] = []
    for step in steps:
        beats = {}
        for name, count in step.counts.items():
            beats[name] = out.beats[name][start[name] : start[name] + count]
            start[name] += count
        done.append(check(step, beats))
    first = 0
    for case in CASES:  # the whole-case checks (the decomposition's final Y)
        count = len(case_commands(case))
        for index in range(first, first + count):
            if steps[index].final is not None:
                steps[index].final(done[first : first + count])
        first += count
    periods = [b - a for a, b in zip(out.cmd_cycles[:-1], out.cmd_cycles[1:], strict=True)]
    want = [s.expected_cycles for s in steps[:-1]]
    checked = [(got, exp) for got, exp in zip(periods, want, strict=True) if exp is not None]
    assert all(got == exp for got, exp in checked), (
        f"command periods {periods} != expected cycles {want}")
    last = out.command_cycles()[-1]
    assert steps[-1].expected_cycles in (None, last), (
        f"last command: {last} cycles, expected {steps[-1].expected_cycles}")


@cocotb.test()
async def test_gemm_random_stalls(dut) -> None:
    """Every case with random valid/ready on every stream (cmd, x, w, yin in; y, q, r out,
    with the output protocol checked), each command fed from the previous one's outputs."""
    h = GemmHarness(dut, CORE.signature)
    await h.reset()
    for index, case in enumerate(CASES):
        rng = random.Random(1000 + index)
        await run_chained(h, case, rng, p_valid=rng.choice([0.3, 0.6, 0.9]),
                          p_ready=rng.choice([0.3, 0.6, 0.9]))
