"""Workload CSVs: the shipped video-DiT tables and SCALE-Sim topologies."""

from __future__ import annotations

import pytest

from semdialect.sim.workloads import (
    STATIC_KINDS,
    WORKLOADS,
    Gemm,
    load_workload,
    shipped_workloads,
    workload_path,
)

# GMACs per denoising step from data/workloads/README.md (§2), computed there by
# gen_workloads.py from the models' architecture values (an independent source).
GMACS_PER_STEP = {
    "opensora2_256px_129f": 252_878.2,
    "opensora2_768px_129f": 7_638_037.9,
    "opensora12_240p_51f": 13_534.5,
    "opensora12_720p_102f": 283_785.2,
    "cogvideox2b_480x720_49f": 119_997.3,
    "latte1_512px_16f": 34_399.0,
    "wan21_1p3b_480x832_81f": 283_001.8,
}


@pytest.mark.parametrize("name", sorted(GMACS_PER_STEP))
def test_shipped_workloads_total_macs(name: str) -> None:
    gemms = load_workload(workload_path(name))
    assert sum(g.macs for g in gemms) / 1e9 == pytest.approx(GMACS_PER_STEP[name], abs=0.06)
    assert (WORKLOADS / "README.md").exists()


def test_shipped_workloads_mark_the_runtime_operands() -> None:
    """Every attention score and attention·V GEMM has two run-time operands (static = none),
    every other GEMM (Linear, patch convolution) static weights."""
    assert set(shipped_workloads()) == set(GMACS_PER_STEP)
    for name in shipped_workloads():
        for g in load_workload(workload_path(name)):
            attention = g.layer.endswith((".qk", ".av"))
            assert g.static == ("none" if attention else "W"), (name, g.layer)
    header = (WORKLOADS / "opensora2_256px_129f.csv").read_text().splitlines()[0]
    assert header == "layer,M,K,N,count,static"


def test_static_column(tmp_path) -> None:
    """``static`` is optional (absent: W), may sit anywhere, and takes W or none."""
    path = tmp_path / "w.csv"
    path.write_text("static,layer,M,K,N\nnone,qk,8,32,8\nW,fc,8,32,8\n")
    qk, fc = load_workload(path)
    assert (qk.static, qk.runtime_w, qk.count) == ("none", True, 1)
    assert (fc.static, fc.runtime_w) == ("W", False)
    path.write_text(HEADER + "fc,8,32,8,2\n")
    (g,) = load_workload(path)
    assert g.static == "W" and not g.runtime_w
    assert STATIC_KINDS == ("W", "none")


@pytest.mark.parametrize("cell", ["w", "None", "NONE", "weights", "", "Wx"])
def test_bad_static_names_file_line_and_column(tmp_path, cell: str) -> None:
    msg = _bad(tmp_path, "layer,M,K,N,count,static\nok,8,32,8,1,W\nx,8,32,8,1," + cell + "\n",
               "line 3, column 'static'")
    assert "W, none" in msg and repr(cell) in msg, msg


def test_short_row_misses_static(tmp_path) -> None:
    _bad(tmp_path, "layer,M,K,N,count,static\nx,8,32,8,1\n", "line 2, column 'static'.*missing")


def test_gemm_rejects_bad_static() -> None:
    with pytest.raises(ValueError, match="'qk': static must be one of W, none, got 'act'"):
        Gemm("qk", 8, 32, 8, static="act")


def test_scalesim_topologies(tmp_path) -> None:
    gemm = tmp_path / "gemm.csv"
    gemm.write_text("Layer, M, N, K,\nfc1, 64, 128, 256,\n")
    (g,) = load_workload(gemm)
    assert (g.m, g.k, g.n, g.count, g.static) == (64, 256, 128, 1, "W")
    conv = tmp_path / "conv.csv"
    conv.write_text(
        "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, "
        "Num Filter, Strides,\nconv1, 224, 224, 7, 7, 3, 64, 2,\n"
    )
    (c,) = load_workload(conv)
    # SCALE-Sim's topology_utils: ofmap side = ceil((224 - 7 + 2) / 2) = 110 (a partial
    # last window counts), not floor((224 - 7) / 2) + 1 = 109
    assert (c.m, c.k, c.n, c.static) == (110 * 110, 7 * 7 * 3, 64, "W")


def test_bad_workloads(tmp_path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("layer,M,K,N,count\nx,10,0,5,1\n")
    with pytest.raises(ValueError, match="line 2.*'K'"):
        load_workload(bad)
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="unknown header"):
        load_workload(bad)
    with pytest.raises(ValueError, match="unknown"):
        workload_path("nope")
    with pytest.raises(ValueError, match="cannot read"):
        load_workload(tmp_path / "missing.csv")


# --- hostile inputs: one-line ValueErrors naming file, line and column, sane upper bounds ----

HEADER = "layer,M,K,N,count\n"


def _bad(tmp_path, text: str | bytes, match: str) -> str:
    """Write ``text`` to a workload CSV, load it, return the ValueError's message."""
    path = tmp_path / "w.csv"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    with pytest.raises(ValueError, match=match) as info:
        load_workload(path)
    msg = str(info.value)
    assert "\n" not in msg, msg
    assert str(path) in msg, msg
    return msg


@pytest.mark.parametrize(
    ("row", "column", "what"),
    [
        ("x,1000000000000,64,64,1", "M", "2147483648"),  # M = 10^12: bound, not a MemoryError
        ("x,64,2147483649,64,1", "K", "2147483648"),
        ("x,64,64,99999999999999999999,1", "N", "2147483648"),
        ("x,64,64,64,4294967296", "count", "2147483648"),
        ("x,-5,64,64,1", "M", "integer"),
        ("x,0,64,64,1", "M", "integer"),
        ("x,64,1.5,64,1", "K", "integer"),
        ("x,64,1e3,64,1", "K", "integer"),
        ("x,64,64,5_000,1", "N", "integer"),
        ("x,64,64,abc,1", "N", "integer"),
        ("x,64,64,,1", "N", "integer"),
        ("x,64,64,64,nan", "count", "integer"),
        ("x,64,64,64,\u0663", "count", "integer"),  # a non-ASCII digit int() would accept
        ("x,64,64", "N", "missing"),
        (",64,64,64,1", "layer", "empty"),
    ],
)
def test_bad_values_name_line_and_column(tmp_path, row: str, column: str, what: str) -> None:
    msg = _bad(tmp_path, HEADER + "ok,8,32,8,1\n" + row + "\n", f"line 3.*{column!r}")
    assert what in msg, msg


def test_header_only_and_empty(tmp_path) -> None:
    _bad(tmp_path, HEADER, "no GEMM rows")
    _bad(tmp_path, HEADER + "\n\n", "no GEMM rows")
    _bad(tmp_path, "", "empty")


def test_missing_columns_are_named(tmp_path) -> None:
    msg = _bad(tmp_path, "layer,M,N,count\nx,1,2,3\n", "line 1.*missing column.*'K'")
    assert "layer,M,K,N" in msg


def test_extra_values_rejected(tmp_path) -> None:
    _bad(tmp_path, HEADER + "x,8,32,8,1,99\n", "line 2.*6 values.*5 columns")


def test_garbage_files(tmp_path) -> None:
    _bad(tmp_path, b"layer,M,K,N,count\nx,8,\x0032,8,1\n", "line 2")  # NUL: csv.Error
    _bad(tmp_path, b"layer,M,K,N,count\nx,8,32,8,\xff\xfe\n", "UTF-8")
    _bad(tmp_path, HEADER + "x,8," + "9" * 5000 + ",8,1\n", "line 2.*'K'")


def test_row_count_and_size_limits(tmp_path) -> None:
    from semdialect.sim.workloads import MAX_BYTES, MAX_ROWS

    _bad(tmp_path, HEADER + "x,8,32,8,1\n" * (MAX_ROWS + 1), f"more than {MAX_ROWS}")
    big = tmp_path / "w.csv"
    with open(big, "w") as fh:
        fh.write(HEADER)
        fh.truncate(MAX_BYTES + 1)
    with pytest.raises(ValueError, match="larger than"):
        load_workload(big)


def test_not_a_regular_file(tmp_path) -> None:
    folder = tmp_path / "dir.csv"
    folder.mkdir()
    with pytest.raises(ValueError, match="not a regular file|cannot read"):
        load_workload(folder)


def test_conv_derived_shape_bounded(tmp_path) -> None:
    conv = tmp_path / "w.csv"
    conv.write_text(
        "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, "
        "Num Filter, Strides,\nconv1, 2000000000, 2000000000, 1, 1, 3, 64, 1,\n"
    )
    with pytest.raises(ValueError, match="line 2.*2147483648"):
        load_workload(conv)


def test_excel_bom_and_blank_lines_accepted(tmp_path) -> None:
    path = tmp_path / "w.csv"
    path.write_bytes(b"\xef\xbb\xbflayer,M,K,N,count\r\n\r\nfc,8,32,16,2\r\n")
    (g,) = load_workload(path)
    assert (g.layer, g.m, g.k, g.n, g.count) == ("fc", 8, 32, 16, 2)


def test_largest_valid_shape_is_modelled_quickly(tmp_path) -> None:
    """M = K = N = 2^31 (the stated bound) loads and runs through the cycle model at once."""
    import time

    from semdialect.config import Config
    from semdialect.sim.model import Design, layer_result

    path = tmp_path / "w.csv"
    top = 2**31
    path.write_text(HEADER + f"huge,{top},{top},{top},{top}\n")
    (g,) = load_workload(path)
    t0 = time.perf_counter()
    r = layer_result(Design.of("semanticdialect",
                               Config(rows=1, cols=1, drain_width=1, lanes=1)), g)
    assert time.perf_counter() - t0 < 2.0
    assert r.cycles > top


def test_gemm_rejects_bad_fields() -> None:
    with pytest.raises(ValueError, match="m"):
        Gemm("x", 0, 1, 1)
    with pytest.raises(ValueError, match="count"):
        Gemm("x", 1, 1, 1, 2**40)
