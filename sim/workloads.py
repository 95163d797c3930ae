"""GEMM workloads: the project's ``layer,M,K,N,count,static`` CSVs and SCALE-Sim topology CSVs.

Each row is one GEMM Y[M, N] = X[M, K] · W[K, N] run ``count`` times per denoising step
(``data/workloads/README.md`` gives every model's sources and conventions). The optional
``static`` column says what W is: ``W`` (static weights, quantized offline — the default when
the column is absent, and for every SCALE-Sim row) or ``none`` (W is an activation produced at
run time, as Kᵀ in Q·Kᵀ and V in attention·V, so the hardware quantizes it at run time). SCALE-Sim
topologies are accepted too: GEMM topologies (``Layer, M, N, K``) and convolution topologies
(``Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter,
Strides``), a convolution becoming the GEMM M = ofmap pixels, K = filter volume, N = filters.

Validation (every problem is one-line ``ValueError`` naming the file, the line and the
column): a workload is a regular UTF-8 file (a leading BOM is allowed) of at most
:data:`MAX_BYTES` bytes with a known header and 1 … :data:`MAX_ROWS` GEMM rows (blank lines
are skipped); every number is a plain decimal integer (ASCII digits only: no sign, point,
exponent or ``_``) in 1 … :data:`MAX_DIM` — M, K, N, ``count`` and every SCALE-Sim field, and
the M, K, N a convolution turns into; a layer name is not empty; ``static`` is one of
:data:`STATIC_KINDS` (exactly, case-sensitive); a row has no more values than the header has
columns.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from semdialect.paths import data_dir

WORKLOADS = data_dir() / "workloads"

#: largest M, K, N, ``count`` (and SCALE-Sim field) of a workload row: 2^31
MAX_DIM = 2**31
#: most GEMM rows in one workload (each is modelled and plotted for every design)
MAX_ROWS = 4096
#: largest workload file in bytes (16 MiB)
MAX_BYTES = 16 * 2**20

#: values of a project CSV's ``static`` column: the second operand W is static weights
#: (quantized offline) or ``none`` of the operands is static (W quantized at run time)
STATIC_KINDS = ("W", "none")

_DIGITS = re.compile(r"[0-9]{1,12}")
_PROJECT = ("layer", "M", "K", "N")
_SCALESIM_GEMM = ("Layer", "M", "N", "K")
_SCALESIM_CONV = ("Layer name", "IFMAP Height", "IFMAP Width", "Filter Height", "Filter Width",
                  "Channels", "Num Filter")
_EXPECTED = "layer,M,K,N[,count][,static] or a SCALE-Sim GEMM/convolution topology"


@dataclass(frozen=True)
class Gemm:
    """One GEMM shape of a workload (M, K, N elements; ``count`` runs per step), each an
    integer in 1 … :data:`MAX_DIM`; ``static`` one of :data:`STATIC_KINDS` (``"W"``: the second
    operand is static weights, ``"none"``: it is an activation quantized at run time).
    ``ValueError`` naming the field otherwise."""

    layer: str
    m: int
    k: int
    n: int
    count: int = 1
    static: str = "W"

    def __post_init__(self) -> None:
        for key in ("m", "k", "n", "count"):
            val = getattr(self, key)
            if isinstance(val, bool) or not isinstance(val, int) or not 1 <= val <= MAX_DIM:
                raise ValueError(f"Gemm {self.layer!r}: {key} must be an integer in "
                                 f"1..{MAX_DIM} (2^31), got {val!r}")
        if self.static not in STATIC_KINDS:
            raise ValueError(f"Gemm {self.layer!r}: static must be one of "
                             f"{', '.join(STATIC_KINDS)}, got {self.static!r}")

    @property
    def runtime_w(self) -> bool:
        """True when the second operand is produced at run time (``static == "none"``)."""
        return self.static == "none"

    @property
    def macs(self) -> int:
        """Multiply-accumulates of all ``count`` runs."""
        return self.m * self.k * self.n * self.count


def _show(cell: str) -> str:
    """A cell for an error message: quoted, escaped (one line), at most 40 characters."""
    return repr(cell if len(cell) <= 40 else cell[:37] + "...")


def _int(row: dict[str, str], key: str, where: str) -> int:
    cell = row.get(key)
    if cell is None:
        raise ValueError(f"{where}, column {key!r}: value missing (the row is shorter than "
                         "the header)")
    if not _DIGITS.fullmatch(cell):
        raise ValueError(f"{where}, column {key!r}: expected an integer in 1..{MAX_DIM} "
                         f"(2^31), got {_show(cell)}")
    val = int(cell)
    if not 1 <= val <= MAX_DIM:
        raise ValueError(f"{where}, column {key!r}: expected an integer in 1..{MAX_DIM} "
                         f"(2^31), got {val}")
    return val


def _name(row: dict[str, str], key: str, where: str) -> str:
    cell = row.get(key, "")
    if not cell:
        raise ValueError(f"{where}, column {key!r}: empty layer name")
    return cell


def _static(row: dict[str, str], header: list[str], where: str) -> str:
    """The ``static`` cell of a project row (``"W"`` when the header has no such column)."""
    if "static" not in header:
        return "W"
    cell = row.get("static")
    if cell is None:
        raise ValueError(f"{where}, column 'static': value missing (the row is shorter than "
                         "the header)")
    if cell not in STATIC_KINDS:
        raise ValueError(f"{where}, column 'static': expected one of "
                         f"{', '.join(STATIC_KINDS)}, got {_show(cell)}")
    return cell


def _read_text(path: Path) -> str:
    """The file's text, or a one-line ``ValueError`` (missing, not a file, too big, binary)."""
    try:
        st = path.stat()
    except OSError as exc:
        raise ValueError(f"workload {path}: cannot read ({exc.strerror})") from None
    if not path.is_file():
        raise ValueError(f"workload {path}: not a regular file")
    if st.st_size > MAX_BYTES:
        raise ValueError(f"workload {path}: larger than {MAX_BYTES} bytes ({st.st_size})")
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ValueError(f"workload {path}: cannot read ({exc.strerror})") from None
    if len(data) > MAX_BYTES:
        raise ValueError(f"workload {path}: larger than {MAX_BYTES} bytes")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ValueError(f"workload {path} line {line}: not UTF-8 text (byte "
                         f"0x{data[exc.start]:02x})") from None


def _layout(header: list[str], path: Path) -> str:
    """Which of the three layouts ``header`` is (``ValueError`` naming missing columns)."""
    keys = set(header)
    candidates = {"project": _PROJECT, "scalesim-gemm": _SCALESIM_GEMM,
                  "scalesim-conv": _SCALESIM_CONV}
    for kind, cols in candidates.items():
        if set(cols) <= keys:
            return kind
    # name what is missing from the layout the header is closest to
    kind, cols = max(candidates.items(), key=lambda kv: len(set(kv[1]) & keys))
    missing = [c for c in cols if c not in keys]
    if len(missing) < len(cols):
        raise ValueError(f"workload {path} line 1: missing column(s) "
                         f"{', '.join(map(repr, missing))} (expected {_EXPECTED})")
    raise ValueError(f"workload {path} line 1: unknown header {_show(','.join(header))} "
                     f"(expected {_EXPECTED})")


def load_workload(path: str | Path) -> list[Gemm]:
    """Read and validate a workload CSV (project format or SCALE-Sim GEMM/conv topology); see
    the module docstring for the rules. Raises a one-line ``ValueError`` on any problem."""
    path = Path(path)
    text = _read_text(path)
    if not text.strip():
        raise ValueError(f"workload {path}: empty file (expected a header: {_EXPECTED})")
    reader = csv.reader(text.splitlines())
    header: list[str] | None = None
    kind = ""
    out: list[Gemm] = []
    try:
        for cells in reader:
            line = reader.line_num
            cells = [c.strip() for c in cells]
            if not any(cells):
                continue
            if header is None:
                while cells and not cells[-1]:  # SCALE-Sim rows end with a comma
                    cells.pop()
                header = cells
                dupes = sorted({c for c in header if header.count(c) > 1})
                if dupes:
                    raise ValueError(f"workload {path} line {line}: duplicate column(s) "
                                     f"{', '.join(map(_show, dupes))}")
                kind = _layout(header, path)
                continue
            where = f"workload {path} line {line}"
            extra = [c for c in cells[len(header):] if c]
            if extra:
                raise ValueError(f"{where}: {len(header) + len(extra)} values but the header "
                                 f"has {len(header)} columns")
            if len(out) == MAX_ROWS:
                raise ValueError(f"{where}: more than {MAX_ROWS} GEMM rows")
            rec = dict(zip(header, cells, strict=False))
            out.append(_gemm(kind, rec, header, where))
    except csv.Error as exc:
        raise ValueError(f"workload {path} line {reader.line_num}: not valid CSV ({exc})"
                         ) from None
    if not out:
        raise ValueError(f"workload {path}: no GEMM rows (only a header)")
    return out


def _gemm(kind: str, rec: dict[str, str], header: list[str], where: str) -> Gemm:
    """One validated row of a workload of layout ``kind``."""
    if kind == "project":  # columns checked left to right
        layer, m = _name(rec, "layer", where), _int(rec, "M", where)
        k, n = _int(rec, "K", where), _int(rec, "N", where)
        count = _int(rec, "count", where) if "count" in header else 1
        return Gemm(layer, m, k, n, count, _static(rec, header, where))
    if kind == "scalesim-gemm":
        return Gemm(_name(rec, "Layer", where), _int(rec, "M", where), _int(rec, "K", where),
                    _int(rec, "N", where))
    ih, iw = _int(rec, "IFMAP Height", where), _int(rec, "IFMAP Width", where)
    fh, fw = _int(rec, "Filter Height", where), _int(rec, "Filter Width", where)
    channels, filters = _int(rec, "Channels", where), _int(rec, "Num Filter", where)
    stride = _int(rec, "Strides", where) if "Strides" in header else 1
    if fh > ih or fw > iw:
        raise ValueError(f"{where}: filter larger than the input feature map")
    m = ((ih - fh) // stride + 1) * ((iw - fw) // stride + 1)
    k = fh * fw * channels
    for key, val in (("M = output pixels", m), ("K = filter volume", k)):
        if val > MAX_DIM:
            raise ValueError(f"{where}: the convolution's {key} is {val}, more than "
                             f"{MAX_DIM} (2^31)")
    return Gemm(_name(rec, "Layer name", where), m, k, filters)


def shipped_workloads() -> tuple[str, ...]:
    """Names (stems) of the workloads shipped in :data:`WORKLOADS`, sorted."""
    return tuple(sorted(f.stem for f in WORKLOADS.glob("*.csv")))


def workload_path(name: str) -> Path:
    """A shipped workload by stem (e.g. ``opensora2_256px_129f``) or a path."""
    p = Path(name)
    shipped = WORKLOADS / f"{name}.csv"
    try:
        if p.suffix == ".csv" and p.exists():
            return p
        if "/" not in name and shipped.exists():
            return shipped
    except (OSError, ValueError):  # e.g. a NUL byte or an over-long name
        pass
    raise ValueError(f"workload: unknown {name!r} (shipped: {', '.join(shipped_workloads())}; "
                     "or a CSV path)")
