"""GEMM workloads: the project's ``layer,M,K,N,count,static`` CSVs and SCALE-Sim topology CSVs.

Each row is one GEMM Y[M, N] = X[M, K] · W[K, N] run ``count`` times per denoising step
(``data/workloads/README.md`` gives every model's sources and conventions). The optional
``static`` column says what W is: ``W`` (static weights, quantized offline — the default when
the column is absent, and for every SCALE-Sim row) or ``none`` (W is an activation produced at
run time, as Kᵀ in Q·Kᵀ and V in attention·V, so the hardware quantizes it at run time).

SCALE-Sim topologies (scale-sim-v2 and -v3, ``scalesim/topology_utils.py``) are read as
SCALE-Sim reads them: **by position** (SCALE-Sim skips the first line unread), so the header's
spelling only has to be recognisable — compared case-insensitively with runs of whitespace
(also tabs and no-break spaces) as one space:

* GEMM topologies (``-i gemm``): name, ``M``, ``N``, ``K`` (headers seen in the SCALE-Sim
  repository: ``Layer,M,N,K``, ``L,M,N,K``, ``Layer Name, M, N, K``);
* convolution topologies: name, IFMAP height, IFMAP width, filter height, filter width,
  channels, filters[, strides] (the spellings ``IFMAP Height``/``Ifmap height``, ``Channels``/
  ``channel``, ``Num Filter``/``num filters``, and the repository's ``IFMAP Width, IFMAP Width``
  typo for height, width; the stride column is optional, default 1; v2's ``Stride height,
  Stride width`` pair is read as two strides). A convolution becomes the GEMM M = output pixels,
  SCALE-Sim's ⌈(H − R + s)/s⌉ per axis (a last partial window counts: 224 × 224, R = 7,
  s = 2 gives 110 × 110, not the unpadded 109 × 109), K = filter volume R·S·C, N = filters;
  a layer whose name contains ``DP`` is depthwise, as in SCALE-Sim: C convolutions of one
  channel each (``count`` = C, K = R·S);
* the columns after these are read by name: ``Sparsity`` (v3's ``N:M`` structured sparsity)
  must be dense (N = M, e.g. ``1:1``, or empty) since the array computes dense blocks;
  ``Batch Size`` must be 1 or empty (SCALE-Sim does not model a batch either: fold it into M);
  any other column (e.g. ``Eh, Ew, e2`` of ``conv_nets/Resnet50.csv``) is ignored, except
  ``count`` and ``static`` (an error: they belong to the project layout, whose K comes
  before N);
* a layer name ending in ``*<count>`` (as :func:`semdialect.sim.scalesim.write_topology` writes
  a GEMM run ``count`` times: SCALE-Sim has no count column) gives that ``count`` and the name
  without the suffix.

Trailing commas (every SCALE-Sim row ends with one), CRLF line ends, a leading BOM and rows of
empty cells are accepted; as in SCALE-Sim (``row.split(',')[:-1]``), text after the last comma
of a SCALE-Sim row beyond the header's columns is not read (``conv_nets/mobilnet_4k.csv`` ends
rows with ``#dw``). A tab-separated file is not a topology (SCALE-Sim splits on commas only).

Validation (every problem is one-line ``ValueError`` naming the file, the line and the
column): a workload is a regular UTF-8 file (a leading BOM is allowed) of at most
:data:`MAX_BYTES` bytes with a known header and 1 … :data:`MAX_ROWS` GEMM rows (blank lines
are skipped); every number is a plain decimal integer (ASCII digits only: no sign, point,
exponent or ``_``) in 1 … :data:`MAX_DIM` — M, K, N, ``count`` and every SCALE-Sim field, and
the M, K, N and ``count`` a convolution turns into; a layer name is not empty; ``static`` is
one of :data:`STATIC_KINDS` (exactly, case-sensitive); a row has no more values than the
header has columns; a project header names no column twice.
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
#: canonical column names of the SCALE-Sim layouts (for messages about a missing column)
_SCALESIM_GEMM = ("Layer", "M", "N", "K")
_SCALESIM_CONV = ("Layer name", "IFMAP Height", "IFMAP Width", "Filter Height", "Filter Width",
                  "Channels", "Num Filter")
#: accepted (normalised) spellings of the SCALE-Sim columns after the name, by position
_GEMM_POSITIONS = (("m",), ("n",), ("k",))
_CONV_POSITIONS = (("ifmap height", "ifmap width"), ("ifmap width",), ("filter height",),
                   ("filter width",), ("channels", "channel"), ("num filter", "num filters"))
_CONV_FIELDS = ("ih", "iw", "fh", "fw", "channels", "filters")
_STRIDES = ("strides", "stride")
_SPARSITY = re.compile(r"([0-9]{1,9}) *: *([0-9]{1,9})")
#: a SCALE-Sim layer name written with its run count: ``<name>*<count>``
COUNT_SUFFIX = re.compile(r"(.*\S)\*([0-9]{1,12})")
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


@dataclass(frozen=True)
class _Layout:
    """How a header's rows are read: ``kind`` (``project``, ``scalesim-gemm``,
    ``scalesim-conv``), the column index of every field and the header's cells (labels)."""

    kind: str
    cols: dict[str, int]
    header: list[str]

    def label(self, field: str) -> str:
        return self.header[self.cols[field]]


def _show(cell: str) -> str:
    """A cell for an error message: quoted, escaped (one line), at most 40 characters."""
    return repr(cell if len(cell) <= 40 else cell[:37] + "...")


def _norm(cell: str) -> str:
    """A header cell as compared: lower case, runs of whitespace (tabs, NBSP) as one space."""
    return " ".join(cell.split()).lower()


def _cell(cells: list[str], lay: _Layout, field: str, where: str) -> str:
    """The cell of ``field`` (``ValueError`` when the row is shorter than the header)."""
    idx = lay.cols[field]
    if idx >= len(cells):
        raise ValueError(f"{where}, column {lay.label(field)!r}: value missing (the row is "
                         "shorter than the header)")
    return cells[idx]


def _int(cells: list[str], lay: _Layout, field: str, where: str) -> int:
    """The integer in 1 … :data:`MAX_DIM` of ``field``."""
    cell = _cell(cells, lay, field, where)
    key = lay.label(field)
    if not _DIGITS.fullmatch(cell):
        raise ValueError(f"{where}, column {key!r}: expected an integer in 1..{MAX_DIM} "
                         f"(2^31), got {_show(cell)}")
    val = int(cell)
    if not 1 <= val <= MAX_DIM:
        raise ValueError(f"{where}, column {key!r}: expected an integer in 1..{MAX_DIM} "
                         f"(2^31), got {val}")
    return val


def _name(cells: list[str], lay: _Layout, where: str) -> str:
    cell = cells[lay.cols["layer"]] if lay.cols["layer"] < len(cells) else ""
    if not cell:
        raise ValueError(f"{where}, column {lay.label('layer')!r}: empty layer name")
    return cell


def _static(cells: list[str], lay: _Layout, where: str) -> str:
    """The ``static`` cell of a project row (``"W"`` when the header has no such column)."""
    if "static" not in lay.cols:
        return "W"
    cell = _cell(cells, lay, "static", where)
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


def _scalesim_layout(header: list[str]) -> _Layout | None:
    """The SCALE-Sim layout of ``header`` by position (None when it is neither)."""
    norm = [_norm(c) for c in header]

    def matches(spellings: tuple[tuple[str, ...], ...]) -> bool:
        return len(norm) > len(spellings) and all(
            norm[i + 1] in ok for i, ok in enumerate(spellings))

    if matches(_GEMM_POSITIONS):
        cols = {"layer": 0, "M": 1, "N": 2, "K": 3}
        kind, rest = "scalesim-gemm", 4
    elif matches(_CONV_POSITIONS):
        cols = {"layer": 0, **{f: i + 1 for i, f in enumerate(_CONV_FIELDS)}}
        kind, rest = "scalesim-conv", 7
        if norm[7:9] == ["stride height", "stride width"]:  # v2's write_topo_file
            cols |= {"stride_h": 7, "stride_w": 8}
            rest = 9
        elif len(norm) > 7 and norm[7] in _STRIDES:
            cols |= {"stride_h": 7, "stride_w": 7}
            rest = 8
    else:
        return None
    for i in range(rest, len(norm)):  # named extra columns, first of each name
        field = {"sparsity": "sparsity", "batch size": "batch"}.get(norm[i])
        if field and field not in cols:
            cols[field] = i
        if norm[i] in ("count", "static"):
            raise ValueError(f"line 1: a SCALE-Sim topology has no {header[i]!r} column (it "
                             "would be ignored): use the project header layer,M,K,N,count,"
                             "static (K before N), or name a row <layer>*<count>")
    return _Layout(kind, cols, header)


def _layout(header: list[str], path: Path) -> _Layout:
    """How to read the rows under ``header`` (``ValueError`` naming missing columns)."""
    keys = set(header)
    if set(_PROJECT) <= keys:
        dupes = sorted({c for c in header if c and header.count(c) > 1})
        if dupes:
            raise ValueError(f"workload {path} line 1: duplicate column(s) "
                             f"{', '.join(map(_show, dupes))}")
        names = (*_PROJECT, *(c for c in ("count", "static") if c in keys))
        return _Layout("project", {c: header.index(c) for c in names}, header)
    try:
        found = _scalesim_layout(header)
    except ValueError as exc:
        raise ValueError(f"workload {path} {exc}") from None
    if found is not None:
        return found
    # name what is missing from the layout the header is closest to
    candidates = {"project": _PROJECT, "scalesim-gemm": _SCALESIM_GEMM,
                  "scalesim-conv": _SCALESIM_CONV}
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
    lay: _Layout | None = None
    out: list[Gemm] = []
    try:
        for cells in reader:
            line = reader.line_num
            cells = [c.strip() for c in cells]
            if not any(cells):
                continue
            if lay is None:
                while cells and not cells[-1]:  # SCALE-Sim rows end with a comma
                    cells.pop()
                lay = _layout(cells, path)
                continue
            where = f"workload {path} line {line}"
            if lay.kind != "project" and len(cells) > len(lay.header):
                cells.pop()  # SCALE-Sim never reads past a row's last comma (e.g. "#dw")
            extra = [c for c in cells[len(lay.header):] if c]
            if extra:
                raise ValueError(f"{where}: {len(lay.header) + len(extra)} values but the "
                                 f"header has {len(lay.header)} columns")
            if len(out) == MAX_ROWS:
                raise ValueError(f"{where}: more than {MAX_ROWS} GEMM rows")
            out.append(_gemm(lay, cells, where))
    except csv.Error as exc:
        raise ValueError(f"workload {path} line {reader.line_num}: not valid CSV ({exc})"
                         ) from None
    if not out:
        raise ValueError(f"workload {path}: no GEMM rows (only a header)")
    return out


def _gemm(lay: _Layout, cells: list[str], where: str) -> Gemm:
    """One validated row of a workload read with layout ``lay``."""
    if lay.kind == "project":  # columns checked left to right
        layer, m = _name(cells, lay, where), _int(cells, lay, "M", where)
        k, n = _int(cells, lay, "K", where), _int(cells, lay, "N", where)
        count = _int(cells, lay, "count", where) if "count" in lay.cols else 1
        return Gemm(layer, m, k, n, count, _static(cells, lay, where))
    layer, count = _counted_name(cells, lay, where)
    if lay.kind == "scalesim-gemm":
        m, n, k = (_int(cells, lay, f, where) for f in ("M", "N", "K"))
    else:
        m, k, n, count = _conv_gemm(cells, lay, where, layer, count)
    _check_extras(cells, lay, where)
    return Gemm(layer, m, k, n, count)


def _counted_name(cells: list[str], lay: _Layout, where: str) -> tuple[str, int]:
    """A SCALE-Sim row's layer name and run count (a ``*<count>`` suffix, else 1)."""
    name = _name(cells, lay, where)
    hit = COUNT_SUFFIX.fullmatch(name)
    if hit is None:
        return name, 1
    count = int(hit.group(2))
    if not 1 <= count <= MAX_DIM:
        raise ValueError(f"{where}, column {lay.label('layer')!r}: the run count after '*' "
                         f"must be in 1..{MAX_DIM} (2^31), got {count}")
    return hit.group(1), count


def _conv_gemm(cells: list[str], lay: _Layout, where: str, layer: str, count: int
               ) -> tuple[int, int, int, int]:
    """(M, K, N, count) of a SCALE-Sim convolution row (a ``DP`` layer is depthwise)."""
    ih, iw, fh, fw, channels, filters = (_int(cells, lay, f, where) for f in _CONV_FIELDS)
    sh = _int(cells, lay, "stride_h", where) if "stride_h" in lay.cols else 1
    sw = _int(cells, lay, "stride_w", where) if "stride_w" in lay.cols else 1
    if fh > ih or fw > iw:
        raise ValueError(f"{where}: filter larger than the input feature map")
    if "DP" in layer:  # SCALE-Sim's depthwise rule: one single-channel convolution a channel
        count, channels = count * channels, 1
    # SCALE-Sim's output size ⌈(H − R + s)/s⌉ (topology_utils.topo_calc_hyperparams): a last
    # partial window counts, so 224, R = 7, s = 2 gives 110, not the unpadded 109
    m = ((ih - fh + sh - 1) // sh + 1) * ((iw - fw + sw - 1) // sw + 1)
    k = fh * fw * channels
    for key, val in (("M = output pixels", m), ("K = filter volume", k),
                     ("count = runs x channels of a depthwise (DP) layer", count)):
        if val > MAX_DIM:
            raise ValueError(f"{where}: the convolution's {key} is {val}, more than "
                             f"{MAX_DIM} (2^31)")
    return m, k, filters, count


def _check_extras(cells: list[str], lay: _Layout, where: str) -> None:
    """SCALE-Sim's optional ``Sparsity`` (dense only) and ``Batch Size`` (1 only) cells."""
    if "sparsity" in lay.cols and lay.cols["sparsity"] < len(cells):
        cell = cells[lay.cols["sparsity"]]
        hit = _SPARSITY.fullmatch(cell)
        if cell and hit is None:
            raise ValueError(f"{where}, column {lay.label('sparsity')!r}: expected a ratio "
                             f"N:M such as 1:1, got {_show(cell)}")
        if hit is not None and (hit.group(1) != hit.group(2) or int(hit.group(1)) < 1):
            raise ValueError(f"{where}, column {lay.label('sparsity')!r}: {cell} structured "
                             "sparsity is not modelled (the array computes dense blocks); "
                             "use a dense topology (N = M, e.g. 1:1)")
    if "batch" in lay.cols and lay.cols["batch"] < len(cells):
        cell = cells[lay.cols["batch"]]
        if cell not in ("", "1"):
            raise ValueError(f"{where}, column {lay.label('batch')!r}: a batch of "
                             f"{_show(cell)} is not read (SCALE-Sim does not model a batch "
                             "column either); fold the batch into the IFMAP height (M)")


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
