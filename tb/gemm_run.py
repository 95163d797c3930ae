"""Run whole GEMMs through :class:`rtl.gemm_core.GemmCore` on Verilator (cocotb).

Two uses share the generated core (Verilog cached by :func:`rtl.emit.cached_verilog`, the
simulator by :func:`tb.runner.run_cocotb`):

* :func:`run_gemm` — the testbench (``tests/test_rtl_gemm_verilator.py``,
  ``tests/test_rtl_random_cycles.py``, ``semdialect sim``): ``tb/cocotb_gemm.py`` generates
  each case's data (GEMMs, quantize commands, a run-time second operand, the SPEC §6
  decomposition: :func:`tb.gemm_ref.case_commands`), compares every output bit with the
  golden model, and writes the measured no-stall cycles of every command to a JSON file.
* :func:`run_gemm_arrays` — a caller's own tensors (``semdialect rtl-gemm``): FP16 X and
  pre-quantized Wᵀ go to ``tb/cocotb_gemm_job.py`` as ``.npy`` files in a work folder, Y comes
  back the same way; nothing is compared here.

The core's limits (:class:`GemmLimits`: largest M, N and K/B; they set the command field
widths and the activation buffer depth) are derived from the request and are part of the
Verilog module name, hence of both cache keys.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from semdialect import golden
from semdialect.config import Config
from semdialect.paths import build_dir
from semdialect.rtl.emit import CachedVerilog, cached_verilog
from semdialect.rtl.gemm_core import DEFAULT_MAX_KB, DEFAULT_MAX_M, DEFAULT_MAX_N, GemmCore
from semdialect.tb.gemm_ref import case_commands
from semdialect.tb.runner import FAST_BUILD_ARGS, CocotbRun, run_cocotb

__all__ = [
    "CONFIG_LIMITS",
    "TEST_LIMITS",
    "GemmArraysResult",
    "GemmLimits",
    "case",
    "command_cycles",
    "config_env",
    "gemm_verilog",
    "run_gemm",
    "run_gemm_arrays",
    "verilog_dir",
    "verilog_identifier",
    "run_job",
    "watch_progress",
]

#: a progress callback: one line of text per stage
Progress = Callable[[str], None]

#: expected no-stall cycles of a GEMM (M, N, K) — the cycle model, given by the caller
CycleModel = Callable[[int, int, int], int]
#: expected no-stall cycles of a quantize command of M rows × K elements
QuantizeModel = Callable[[int, int], int]


def verilog_dir() -> Path:
    """Where the test runs' cycle files and the PE test top go."""
    return build_dir() / "verilog" / "gemm_tb"


@dataclass(frozen=True)
class GemmLimits:
    """Limits a GemmCore is generated for (:class:`~rtl.gemm_core.GemmCore` ``max_m``,
    ``max_n``, ``max_kb``): the largest M, N (each 2^b − 1 for a command field of b bits: the
    hardware depends only on b) and K/B (a power of two: the activation buffer holds
    2 × rows × max_kb blocks)."""

    max_m: int
    max_n: int
    max_kb: int

    def __post_init__(self) -> None:
        for name in ("max_m", "max_n", "max_kb"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: must be a positive integer, got {value!r}")
        if self.max_kb & (self.max_kb - 1):
            raise ValueError(f"max_kb: must be a power of two, got {self.max_kb}")

    @classmethod
    def covering(cls, m: int, n: int, kb: int, floor: GemmLimits | None = None) -> GemmLimits:
        """The smallest limits, at least ``floor`` (default :data:`TEST_LIMITS`, so small
        requests share one build), that hold an M × N GEMM with K/B = ``kb``. ``ValueError``
        when it exceeds :data:`CONFIG_LIMITS` (the core ``semdialect verilog`` generates for a
        configuration)."""
        CONFIG_LIMITS.check(m, n, kb)
        base = floor or TEST_LIMITS
        return cls(
            max(base.max_m, (1 << m.bit_length()) - 1),
            max(base.max_n, (1 << n.bit_length()) - 1),
            max(base.max_kb, 1 << max(kb - 1, 0).bit_length()),
        )

    def check(self, m: int, n: int, kb: int, block: int | None = None) -> None:
        """``ValueError`` unless 1 ≤ M ≤ max_m, 1 ≤ N ≤ max_n and 1 ≤ K/B ≤ max_kb (with
        ``block`` = B, K is stated in elements)."""
        for dim, value, top in (("M", m, self.max_m), ("N", n, self.max_n)):
            if not 1 <= value <= top:
                raise ValueError(f"gemm: {dim} = {value} is outside the GemmCore's range "
                                 f"1..{top}")
        if not 1 <= kb <= self.max_kb:
            text = (f"K/B = {kb} is outside 1..{self.max_kb}" if block is None else
                    f"K = {kb * block} ({kb} blocks of {block}) is outside "
                    f"{block}..{self.max_kb * block}")
            raise ValueError(f"gemm: {text}, the GemmCore's limit")

    def kwargs(self) -> dict[str, int]:
        """``max_m``/``max_n``/``max_kb`` keyword arguments of :class:`GemmCore`."""
        return {"max_m": self.max_m, "max_n": self.max_n, "max_kb": self.max_kb}

    @property
    def suffix(self) -> str:
        """``m<max_m>_n<max_n>_kb<max_kb>``, part of the Verilog module name."""
        return f"m{self.max_m}_n{self.max_n}_kb{self.max_kb}"


#: the test builds' limits (fast counters, a small buffer) and the floor of derived limits
TEST_LIMITS = GemmLimits(255, 255, 8)
#: the limits of a configuration's core (``GemmCore.from_config`` defaults, what ``semdialect
#: verilog`` generates): every GEMM a configuration allows
CONFIG_LIMITS = GemmLimits(DEFAULT_MAX_M, DEFAULT_MAX_N, DEFAULT_MAX_KB)


def case(m: int, n: int, kb: int, data: str = "random", seed: int = 0, *, kind: str = "gemm",
         salient: object = None) -> dict:
    """A testbench case (``tb/cocotb_gemm.py``): ``kind`` ``gemm`` (default), ``add``,
    ``quantize``, ``dynamic`` or ``decompose`` (the commands:
    :func:`tb.gemm_ref.case_commands`), an M × N
    GEMM with K/B = ``kb``, ``data`` and ``seed`` choosing X and W; ``salient`` the salient
    rows (:func:`tb.gemm_ref.salient_rows`: indices, ``{"random": count}`` or
    ``{"attention": rho}``)."""
    out = {"m": m, "n": n, "kb": kb, "data": data, "seed": seed}
    if kind != "gemm":
        out["kind"] = kind
    if salient is not None:
        out["salient"] = salient
    return out


def command_cycles(cfg: Config, case: dict, gemm_model: CycleModel | None,
                   quantize_model: QuantizeModel | None) -> list[int | None]:
    """The expected no-stall cycles of every command of ``case`` (None where no model is
    given): ``gemm_model(M, N, K)`` for a GEMM (with or without ``add``),
    ``quantize_model(M, K)`` for a quantize command; K in elements."""
    out: list[int | None] = []
    for cmd in case_commands(case):
        k = cmd["kb"] * cfg.block
        if cmd["op"] == "quantize":
            out.append(None if quantize_model is None else quantize_model(cmd["m"], k))
        else:
            out.append(None if gemm_model is None else gemm_model(cmd["m"], cmd["n"], k))
    return out


def verilog_identifier(name: str) -> str:
    """``name`` (e.g. a configuration name) made a Verilog identifier: other characters
    become ``_``; a leading non-letter gets the prefix ``c_``."""
    ident = re.sub(r"\W", "_", name)
    return ident if ident[:1].isalpha() else f"c_{ident}"


def gemm_verilog(cfg: Config, limits: GemmLimits = TEST_LIMITS) -> CachedVerilog:
    """The GemmCore of ``cfg`` for ``limits`` (module ``gemm_core_<config>_<limits>``), from
    the Verilog cache when possible."""
    name = f"gemm_core_{verilog_identifier(cfg.name)}_{limits.suffix}"
    return cached_verilog(name, GemmCore.from_config, (cfg,), limits.kwargs())


def config_env(cfg: Config) -> str:
    """``cfg`` as JSON for a cocotb process (``Config(**json.loads(...))``); a formatbook
    file path is made absolute (the simulator runs in another folder)."""
    fields = cfg.to_dict()
    book = fields["formatbook"]
    if os.path.isfile(book):
        fields["formatbook"] = str(Path(book).resolve())
    return json.dumps(fields)


def run_gemm(cfg: Config, cases: list[dict], expected_cycles: CycleModel | None = None,
             limits: GemmLimits | None = None, *,
             expected_quantize: QuantizeModel | None = None,
             testcase: str | None = None, **env: str) -> tuple[CocotbRun, float, Path]:
    """Run ``cases`` (:func:`case`) on ``cfg``'s GemmCore; with ``expected_cycles`` (e.g.
    ``functools.partial(semdialect.sim.cycles.gemm_cycles, cfg)``) every no-stall GEMM and
    every back-to-back command period of a GEMM must take exactly that many cycles; with
    ``expected_quantize`` (``sim.cycles.quantize_cycles``) the same for quantize commands.
    ``limits`` default to the smallest covering every command (:meth:`GemmLimits.covering`).
    ``testcase`` runs one cocotb test of ``tb/cocotb_gemm.py`` only (e.g.
    ``test_gemm_no_stall``). Returns the run, the seconds spent on Verilog (0-ish on a cache
    hit) and the measured-cycles JSON file (one record per command: ``op``, ``add``, ``M``,
    ``N``, ``K``, ``data``, ``cycles``, ``expected``)."""
    if expected_cycles is not None or expected_quantize is not None:
        cases = [{**c, "cycles": command_cycles(cfg, c, expected_cycles, expected_quantize)}
                 for c in cases]
    if limits is None:
        commands = [cmd for c in cases for cmd in case_commands(c)]
        limits = GemmLimits.covering(max(cmd["m"] for cmd in commands),
                                     max(max(cmd["n"], 1) for cmd in commands),
                                     max(cmd["kb"] for cmd in commands))
    top = gemm_verilog(cfg, limits)
    cycles_tmp = verilog_dir() / f"cycles-{cfg.name}.json"
    cycles_tmp.parent.mkdir(parents=True, exist_ok=True)
    cycles_tmp.unlink(missing_ok=True)
    extra_env = {
        "GEMM_CONFIG": config_env(cfg),
        "GEMM_MAX_KB": str(limits.max_kb),
        "GEMM_MAX_M": str(limits.max_m),
        "GEMM_MAX_N": str(limits.max_n),
        "GEMM_CASES": json.dumps(cases),
        "GEMM_CYCLES": str(cycles_tmp),
        **env,
    }
    run = run_cocotb([top.path], top.name, "semdialect.tb.cocotb_gemm", extra_env=extra_env,
                     build_args=FAST_BUILD_ARGS, testcase=testcase)
    return run, top.seconds, cycles_tmp


# -- user tensors through files ------------------------------------------------------------------


@contextlib.contextmanager
def watch_progress(path: Path, say: Progress | None, what: str,
                   every: float = 10.0) -> Iterator[None]:
    """While the block runs, every ``every`` seconds: ``say`` how far the simulation is (from
    the job's ``progress.json``, :func:`tb.drivers.progress_file`) or, before it exists, that
    the simulator is still being built or started. Nothing when ``say`` is None."""
    if say is None:
        yield
        return
    stop = threading.Event()
    start = time.monotonic()

    def loop() -> None:
        while not stop.wait(every):
            try:
                state = json.loads(path.read_text())
                say(f"Verilator: simulating, cycle {state['cycle']}: {state['done']} of "
                    f"{state['total']} {what} done")
            except (OSError, ValueError, KeyError):
                say(f"Verilator: building or starting the simulator "
                    f"({time.monotonic() - start:.0f} s) ...")

    thread = threading.Thread(target=loop, name="semdialect-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@dataclass(frozen=True)
class GemmArraysResult:
    """Outcome of :func:`run_gemm_arrays`."""

    y_bits: np.ndarray  #: (M, N) uint32, binary32 bit patterns of Y
    invalid: np.ndarray  #: (M, N) bool, the core's ``invalid`` output flags
    cycles: int  #: command transfer through last output transfer, both included
    verilog: CachedVerilog
    run: CocotbRun

    @property
    def y(self) -> np.ndarray:
        """Y as float32 (M, N)."""
        return self.y_bits.view(np.float32)


def run_job(top: CachedVerilog, module: str, env_var: str, work: Path, say: Progress,
            progress: Progress | None, *, unit: str, what: str,
            build_time: str) -> tuple[CocotbRun, dict]:
    """Build (unless cached) and run the cocotb job ``module`` on ``top`` with its files in
    ``work`` (named by ``$env_var``); ``say`` what happens, with :func:`watch_progress` in
    ``unit`` meanwhile. Returns the run and the job's ``result.json``."""
    say(f"Verilator: building the simulator unless cached (a new build takes about "
        f"{build_time}; builds are kept in {build_dir() / 'sim'}), then running {what} ...")
    t0 = time.monotonic()
    with watch_progress(work / "progress.json", progress, unit):
        run = run_cocotb([top.path], top.name, module, extra_env={env_var: str(work.resolve())},
                         build_args=FAST_BUILD_ARGS, test_dir=work / "run")
    result = json.loads((work / "result.json").read_text())
    built = f"built in {run.build_seconds:.0f} s" if run.built else "reused the cached build"
    say(f"Verilator: {built}, simulated {result['cycles']} cycles in {run.test_seconds:.1f} s "
        f"(total {time.monotonic() - t0:.1f} s)")
    return run, result


def build_time_estimate(cfg: Config) -> str:
    """A rough Verilator build time of ``cfg``'s GemmCore on a 2-core machine, said before a
    build. Measured with the replicated cells compiled once (:data:`tb.runner.FAST_BUILD_ARGS`
    ``--hierarchical``): the 2×2 ``small`` 12 s, a 3×2 d = 7 array 26 s, the 8×8 ``default``
    42 s, the 16×16 ``large`` 84 s, the 32×32 ``xlarge`` 3.6 min."""
    pes = cfg.rows * cfg.cols
    if pes <= 16:
        return "0.2-1 min"
    if pes <= 256:
        return "1-2 min"
    return "3-6 min"


def cycle_limit(cfg: Config, m: int, n: int, kb: int) -> int:
    """A generous bound on a GEMM's cycles without stalls (a deadlock guard, not a model):
    four times the quantizer's and the array's work, plus 10 000."""
    tiles = math.ceil(m / cfg.rows) * math.ceil(n / cfg.tile_cols)
    work = m * kb * cfg.selector_cycles + tiles * (kb * cfg.acc_stages + cfg.rows *
                                                   cfg.tile_cols + 40)
    return 4 * work + 10_000


def run_gemm_arrays(
    cfg: Config,
    x16: np.ndarray,
    weights: golden.QTensor,
    work_dir: str | os.PathLike[str],
    *,
    limits: GemmLimits | None = None,
    progress: Progress | None = None,
    salient: np.ndarray | None = None,
) -> GemmArraysResult:
    """Y = X · W on ``cfg``'s GemmCore for X = ``x16`` ((M, K) float16, finite or not: a
    NaN/Inf block flags its row's outputs, SPEC §2) and W given pre-quantized as
    ``golden.quantize_weights`` returns it (Wᵀ: (N, K) codes, (N, K/B) SE and dialect, with
    ``cfg``'s formatbook and B). Inputs and outputs pass through ``.npy`` files in
    ``work_dir`` (an existing folder, e.g. a temporary one); the simulator's log goes to
    ``work_dir/run/``. ``limits`` default to the smallest covering the GEMM. ``salient``:
    sorted distinct row indices of X: the decomposed layer of SPEC §6 in two passes on the
    core (``tb/cocotb_gemm_job.py``); ``cycles`` is then the sum of both commands'."""
    say = progress or (lambda _msg: None)
    x16 = np.asarray(x16)
    if x16.dtype != np.float16 or x16.ndim != 2:
        raise ValueError(f"X: expected an (M, K) float16 array, got {x16.dtype} {x16.shape}")
    m, k = x16.shape
    b = cfg.block
    if weights.se is None or weights.dialect is None or weights.block != b:
        raise ValueError(f"W: expected dialect-quantized weights with B = {b}")
    if weights.format != cfg.book().name:
        raise ValueError(f"W: quantized with {weights.format}, the core uses {cfg.book().name}")
    n, kw = weights.codes.shape
    if k != kw or k % b:
        raise ValueError(f"gemm: X has K = {k}, Wᵀ has K = {kw}; both must be a multiple of {b}")
    kb = k // b
    if limits is None:
        limits = GemmLimits.covering(m, n, kb)
    limits.check(m, n, kb, b)

    t0 = time.monotonic()
    say(f"Verilog: GemmCore {cfg.name} ({cfg.rows}x{cfg.cols}, B = {b}, {cfg.formatbook} "
        f"{cfg.select}) for M <= {limits.max_m}, N <= {limits.max_n}, "
        f"K <= {limits.max_kb * b} ...")
    top = gemm_verilog(cfg, limits)
    say(f"Verilog: {'reused from the cache' if top.hit else 'generated'} in "
        f"{time.monotonic() - t0:.1f} s ({top.path})")

    work = Path(work_dir)
    np.save(work / "x.npy", np.ascontiguousarray(x16).view(np.uint16))
    np.save(work / "w_codes.npy", np.ascontiguousarray(weights.codes, np.uint8))
    np.save(work / "w_se.npy", (weights.se.astype(np.int16) + 16).astype(np.uint8))
    np.save(work / "w_dialect.npy", np.ascontiguousarray(weights.dialect, np.uint8))
    job = {"config": json.loads(config_env(cfg)), "limits": limits.kwargs(),
           "m": m, "n": n, "kb": kb, "cycle_limit": cycle_limit(cfg, m, n, kb)}
    if salient is not None and len(salient):
        rows = np.asarray(salient, np.int64)
        if rows.ndim != 1 or rows.min() < 0 or rows.max() >= m or np.unique(rows).size != rows.size:
            raise ValueError(f"salient: expected distinct row indices in 0..{m - 1}")
        job["salient"] = sorted(int(r) for r in rows)
        job["cycle_limit2"] = cycle_limit(cfg, len(rows), n, kb)
    (work / "job.json").write_text(json.dumps(job, indent=1))

    run, result = run_job(top, "semdialect.tb.cocotb_gemm_job", "GEMM_JOB", work, say,
                          progress, unit="output beats", what=f"{m}x{k} . {k}x{n}",
                          build_time=build_time_estimate(cfg))
    y_bits = np.load(work / "y.npy")
    invalid = np.load(work / "invalid.npy")
    if y_bits.shape != (m, n) or y_bits.dtype != np.uint32 or invalid.shape != (m, n):
        raise RuntimeError(f"cocotb job returned Y {y_bits.dtype} {y_bits.shape}, expected "
                           f"uint32 ({m}, {n})")
    return GemmArraysResult(y_bits, invalid, int(result["cycles"]), top, run)
