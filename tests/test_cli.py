"""The ``semdialect`` command line: outputs, and one-line errors with no output file."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from semdialect.cli import main
from semdialect.golden import gemm, quantize


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "semdialect", *args], capture_output=True,
                          text=True)


@pytest.fixture
def tensor(tmp_path, rng):
    p = tmp_path / "x.npy"
    np.save(p, rng.standard_normal((4, 3, 64)).astype(np.float32))
    return p


@pytest.mark.parametrize("fmt", ["dfp4", "sd32", "mxfp4", "mxint8", "nvfp4", "int4"])
def test_quantize_writes_canonical_outputs(tmp_path, tensor, fmt: str) -> None:
    out = tmp_path / "o.npz"
    assert main(["quantize", str(tensor), "-o", str(out), "--format", fmt]) == 0
    z = np.load(out)
    x = np.load(tensor)
    ref = quantize(x, fmt)
    assert z["codes"].dtype == np.uint8 and z["codes"].shape == x.shape
    assert z["dequant"].dtype == np.float32 and np.array_equal(z["dequant"], ref.dequant)
    if fmt in ("dfp4", "sd32"):
        assert z["se"].dtype == np.int8 and z["dialect"].dtype == np.uint8
        assert z["se"].shape == (4, 3, 2) and "scale" not in z
    else:
        assert z["scale"].dtype == (np.float32 if fmt == "int4" else np.uint8)
        assert ("tensor_scale" in z) == (fmt == "nvfp4")


def test_gemm_cli_matches_library(tmp_path, rng) -> None:
    x = rng.standard_normal((5, 64)).astype(np.float32)
    w = rng.standard_normal((64, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "w.npy", w)
    out = tmp_path / "y.npy"
    assert main(["gemm", str(tmp_path / "x.npy"), str(tmp_path / "w.npy"), "-o", str(out),
                 "--format", "dfp4", "--select", "two-stage"]) == 0
    y = np.load(out)
    assert y.dtype == np.float32
    assert np.array_equal(y, gemm(x, w, "dfp4", select="two-stage"))


def test_error_table_lists_every_format(tensor) -> None:
    r = run("error", str(tensor))
    assert r.returncode == 0, r.stderr
    for label in ("fp16", "sd32", "dfp4 lut", "two-stage", "mxfp4", "nvfp4", "int4", "mxint8"):
        assert label in r.stdout
    assert "4.312" in r.stdout and "8.250" in r.stdout


@pytest.mark.parametrize(
    "make, args, message",
    [
        (lambda x: np.where(np.arange(x.size).reshape(x.shape) == 70, np.nan, x), [],
         "NaN/Inf in block (0, 1, 0)"),
        (lambda x: x * 1e6, [], "outside the FP16 range"),
        (lambda x: x[..., :40], [], "not a multiple of the block size"),
        (lambda x: x, ["--format", "fp8"], "invalid choice"),
        (lambda x: x, ["--format", "sd32", "--select", "two-stage"], "two-stage"),
        (lambda x: x, ["--formatbook", "missing.toml"], "cannot read"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, tensor, make, args, message) -> None:
    bad = tmp_path / "bad.npy"
    np.save(bad, make(np.load(tensor)))
    out = tmp_path / "o.npz"
    r = run("quantize", str(bad), "-o", str(out), *args)
    assert r.returncode == 2
    assert message in r.stderr
    assert "Traceback" not in r.stderr
    assert not out.exists()


def test_malformed_formatbook_and_missing_file(tmp_path, tensor) -> None:
    book = tmp_path / "b.toml"
    book.write_text("dialects = [[0, 2, 1, 3, 4, 5, 6, 7]]")
    r = run("quantize", str(tensor), "-o", str(tmp_path / "o.npz"), "--formatbook", str(book))
    assert r.returncode == 2 and "strictly increasing" in r.stderr
    r = run("quantize", str(tmp_path / "nope.npy"), "-o", str(tmp_path / "o.npz"))
    assert r.returncode == 2 and "no such file" in r.stderr
    (tmp_path / "junk.npy").write_text("not numpy")
    r = run("error", str(tmp_path / "junk.npy"))
    assert r.returncode == 2 and "not a readable" in r.stderr
    r = run("gemm", str(tensor), str(tensor), "-o", str(tmp_path / "y.npy"))
    assert r.returncode == 2 and "2-D" in r.stderr


def test_user_formatbook_through_cli(tmp_path, tensor) -> None:
    book = tmp_path / "b.toml"
    book.write_text('name = "two"\ndialects = [[0,1,2,3,4,6,8,12],[0,2,4,6,8,10,12,15]]')
    out = tmp_path / "o.npz"
    assert main(["quantize", str(tensor), "-o", str(out), "--formatbook", str(book)]) == 0
    z = np.load(out)
    assert set(np.unique(z["dialect"])) <= {0, 1} and str(z["format"]) == "two"


def test_help_explains_commands() -> None:
    r = run("--help")
    assert r.returncode == 0
    for cmd in ("quantize", "gemm", "error", "sim", "bench"):
        assert cmd in r.stdout
    assert "--pad" in run("quantize", "--help").stdout


def test_sim_runs_on_the_default_config(tmp_path) -> None:
    """The main job's golden, cycle-model, energy and report stages (the RTL and synthesis
    stages have their own tests and are skipped here to keep the suite fast)."""
    # outputs of an older run with synthesis must not leak into this run's report
    (tmp_path / "fmax.csv").write_text("unit,formats_per_cycle,ice40_lut4,ice40_dff,fmax_mhz,"
                                       "device\npe_core,,1,1,5.0,hx8k-ct256\n")
    (tmp_path / "array_area.csv").write_text("design,part,module,count,unit_nand2_eq,nand2_eq\n")
    r = run("sim", "--config", "default", "--out", str(tmp_path), "--skip-rtl", "--skip-area")
    assert r.returncode == 0, r.stderr
    for name in ("minilm.q_weight", "minilm.ffn_act", "video.tokens", "gaussian", "student-t"):
        assert name in r.stdout
    for f in ("summary.md", "COMPUTE_REPORT.csv", "BANDWIDTH_REPORT.csv", "energy.csv",
              "samples_accuracy.csv", "throughput.png", "roofline.png", "dialect_usage.png"):
        assert (tmp_path / f).is_file(), f
    summary = (tmp_path / "summary.md").read_text()
    for design in ("semanticdialect", "blockdialect", "mxfp4", "mxint8"):
        assert f"| {design} |" in summary
    assert "time at 100.0 MHz (an assumed clock" in summary
    assert not (tmp_path / "fmax.csv").exists() and not (tmp_path / "array_area.csv").exists()
    r = run("sim", "--config", "configs/missing.toml")
    assert r.returncode == 2 and "--config" in r.stderr and "configs/missing.toml" in r.stderr
    assert len(r.stderr.splitlines()) == 1
