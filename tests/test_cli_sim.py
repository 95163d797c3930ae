"""``semdialect sim`` never leaves a mixed or broken output folder.

Every argument is checked before anything is touched (bad input: one line on stderr, exit
status 2, naming the parameter); a run's outputs are written into a staging folder next to
``--out`` and swapped in only when the whole run succeeded, so ``--out`` holds either this
run's files (and only this run's: no stale area/RTL/Fmax files of an earlier run) or the old
set, untouched. The same holds for the report builder (``make report``).

The runs use ``--skip-rtl --skip-area`` (a few seconds each).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from semdialect.cli import main, mainjob
from semdialect.reports import build as report_build

FAST = ["sim", "--skip-rtl", "--skip-area"]

#: an earlier full run's files (contents only need to be recognisable), plus a user's note and
#: `semdialect eval`'s report, which a sim run must keep
OLD_RUN = {
    "model_vs_rtl.csv": "config,M,N,K,rtl_cycles,model_cycles,source\n"
                        + "default,8,8,128,100,100,semdialect sim\n" * 6,
    "model_vs_rtl.png": "old plot",
    "area.csv": "old area\n",
    "array_area.csv": "old array area\n",
    "area.png": "old plot",
    "ablation.png": "old plot",
    "fmax.csv": "unit,formats_per_cycle,ice40_lut4,ice40_dff,fmax_mhz,device\n"
                "pe_core,,1,1,19.2,hx8k\n",
    "fmax_notes.txt": "old notes\n",
    "COMPUTE_REPORT.csv": "old compute\n",
    "summary.md": "OLD SUMMARY: 6 of 6 GEMMs measured on the RTL match; clock 19.2 MHz\n",
    "notes.txt": "my own notes\n",
    "accuracy.md": "semdialect eval's report\n",
}
KEPT = ("notes.txt", "accuracy.md")


def snapshot(folder: Path) -> dict[str, object]:
    """Everything observable about ``folder`` (itself and its entries, not following links)."""
    st = folder.lstat()
    snap: dict[str, object] = {".": (st.st_ino, stat.S_IMODE(st.st_mode))}
    for entry in sorted(folder.iterdir()):
        est = entry.lstat()
        data = entry.read_bytes() if entry.is_file() and not entry.is_symlink() else None
        snap[entry.name] = (est.st_ino, stat.S_IMODE(est.st_mode), est.st_mtime_ns, data)
    return snap


def make_old_run(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for name, text in OLD_RUN.items():
        (folder / name).write_text(text)
    return folder


@pytest.fixture
def old_out(tmp_path: Path) -> Path:
    return make_old_run(tmp_path / "out")


def one_line_error(capsys: pytest.CaptureFixture[str], *names: str) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for name in names:
        assert name in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def umask() -> Iterator[int]:
    """Run with umask 027 (restored afterwards)."""
    old = os.umask(0o027)
    try:
        yield 0o027
    finally:
        os.umask(old)


# --- 1, 3, 4: every argument checked before anything is touched ---------------------------

def _workload(tmp_path: Path, text: str) -> str:
    path = tmp_path / "workload.csv"
    path.write_text(text)
    return str(path)


BAD_WORKLOADS = {
    "huge_m": ("layer,M,K,N,count\nx,1000000000000,64,64,1\n", ("line 2", "'M'")),
    "header_only": ("layer,M,K,N,count\n", ("no GEMM rows",)),
    "missing_column": ("layer,M,N,count\nx,1,2,3\n", ("'K'",)),
    "negative": ("layer,M,K,N,count\nx,8,-64,8,1\n", ("line 2", "'K'")),
    "not_numeric": ("layer,M,K,N,count\nx,8,64,eight,1\n", ("line 2", "'N'")),
}


@pytest.mark.parametrize("case", sorted(BAD_WORKLOADS))
def test_bad_workload_touches_nothing(tmp_path: Path, old_out: Path, capsys, case: str) -> None:
    """A bad --workload is rejected before --skip-area removes anything (defect 1, 3)."""
    text, names = BAD_WORKLOADS[case]
    before, siblings = snapshot(old_out), sorted(os.listdir(tmp_path))
    rc = main([*FAST, "--workload", _workload(tmp_path, text), "--out", str(old_out)])
    assert rc == 2
    one_line_error(capsys, "--workload", *names)
    assert snapshot(old_out) == before
    assert sorted(os.listdir(tmp_path)) == siblings + ["workload.csv"]


@pytest.mark.parametrize("rho", ["2", "1", "1.0", "-0.1", "nan", "NaN", "inf", "-inf", "1e400",
                                 "abc", "", " ", "0x1", "1/2", "1e-999999999", "0.5e99999999",
                                 "5%"])
def test_bad_rho(tmp_path: Path, old_out: Path, capsys, rho: str) -> None:
    """--rho outside [0, 1) or not a decimal: one line naming --rho, exit 2, nothing touched
    (also for exponents that would take Fraction forever)."""
    before = snapshot(old_out)
    new = tmp_path / "new"
    assert main([*FAST, "--rho", rho, "--out", str(old_out)]) == 2
    one_line_error(capsys, "--rho")
    assert main([*FAST, "--rho", rho, "--out", str(new)]) == 2
    one_line_error(capsys, "--rho")
    assert snapshot(old_out) == before
    assert not new.exists()


def test_rho_parsed_once_into_a_fraction() -> None:
    from fractions import Fraction

    assert mainjob.parse_rho("0.05") == Fraction(1, 20)
    assert mainjob.parse_rho("0") == 0
    assert mainjob.parse_rho("5e-2") == Fraction(1, 20)
    assert mainjob.parse_rho(Fraction(1, 3)) == Fraction(1, 3)
    with pytest.raises(ValueError, match="--rho"):
        mainjob.parse_rho(Fraction(3, 2))


def test_bad_config_touches_nothing(tmp_path: Path, old_out: Path, capsys) -> None:
    before = snapshot(old_out)
    assert main([*FAST, "--config", str(tmp_path / "missing.toml"), "--out", str(old_out)]) == 2
    one_line_error(capsys, "config")
    assert snapshot(old_out) == before


@pytest.mark.parametrize("case", ["file", "under_file", "cwd", "parent_of_cwd", "has_folder"])
def test_bad_out(tmp_path: Path, capsys, monkeypatch, case: str) -> None:
    """--out must be a folder this command may replace as a whole."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "keep.txt").write_text("x")
    monkeypatch.chdir(work)
    out = {"file": work / "keep.txt", "under_file": work / "keep.txt" / "out", "cwd": Path("."),
           "parent_of_cwd": tmp_path, "has_folder": tmp_path / "box"}[case]
    if case == "has_folder":
        (out / "sub").mkdir(parents=True)
    before = snapshot(tmp_path)
    assert main([*FAST, "--out", str(out)]) == 2
    one_line_error(capsys, "--out")
    assert snapshot(tmp_path) == before
    assert sorted(os.listdir(work)) == ["keep.txt"]


# --- 2: all outputs of this run, or the old set untouched -----------------------------------

def test_skipped_stages_leave_no_stale_files(tmp_path: Path, old_out: Path) -> None:
    """--skip-rtl/--skip-area: no model_vs_rtl/area/Fmax file of the earlier run survives;
    the summary says which stages were skipped; files sim does not own are kept."""
    assert main([*FAST, "--out", str(old_out)]) == 0
    names = set(os.listdir(old_out))
    for stale in ("model_vs_rtl.csv", "model_vs_rtl.png", "area.csv", "array_area.csv",
                  "area.png", "ablation.png", "fmax.csv", "fmax_notes.txt"):
        assert stale not in names
    for name in KEPT:
        assert (old_out / name).read_text() == OLD_RUN[name]
    assert {"summary.md", "COMPUTE_REPORT.csv", "energy.csv", "samples_accuracy.csv"} <= names
    summary = (old_out / "summary.md").read_text()
    assert "measured on the RTL" not in summary and "OLD SUMMARY" not in summary
    assert "19.2" not in summary
    assert "skipped (--skip-rtl)" in summary and "skipped (--skip-area)" in summary
    assert (old_out / "COMPUTE_REPORT.csv").read_text() != OLD_RUN["COMPUTE_REPORT.csv"]
    assert sorted(os.listdir(tmp_path)) == ["out"]  # no staging or old folder left behind


def test_eval_report_in_out_is_kept_and_summarised(tmp_path: Path) -> None:
    """`semdialect eval`'s accuracy.csv in --out is carried over before the report is built,
    so the summary still links it and its plot is made."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "accuracy.csv").write_text(
        "table,row,act_bits_per_element,weight_bits_per_element,metric,value\n"
        "video,sd32 lut,4.3125,4.3125,sqnr_db,19.5\n"
        "minilm_w4a4,sd32 lut,4.3125,4.3125,out_sqnr_db_mean_over_layers,15.0\n")
    (out / "accuracy_vs_bits.png").write_text("an old plot")
    assert main([*FAST, "--out", str(out)]) == 0
    assert "## Accuracy on real models" in (out / "summary.md").read_text()
    assert (out / "accuracy_vs_bits.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt()])
@pytest.mark.parametrize("where", ["stage_energy", "build_report"])
def test_failure_leaves_old_out_exactly(tmp_path: Path, old_out: Path, monkeypatch, capsys,
                                        exc: BaseException, where: str) -> None:
    """A failing or interrupted run (here in the last stage, or while the report is half
    written) removes its staging folder and leaves the old --out exactly as it was."""
    def fail(*args: object, **kwargs: object) -> None:
        if where == "build_report":
            out = Path(str(args[0]))
            (out / "summary.md").write_text("half")  # the builder got this far
        raise exc

    if where == "stage_energy":
        monkeypatch.setattr(mainjob, "stage_energy", fail)
    else:
        monkeypatch.setattr(report_build, "build_report", fail)
    before = snapshot(old_out)
    if isinstance(exc, KeyboardInterrupt):
        assert main([*FAST, "--out", str(old_out)]) == 130
    else:
        with pytest.raises(RuntimeError, match="boom"):
            main([*FAST, "--out", str(old_out)])
    assert snapshot(old_out) == before
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_real_ctrl_c_mid_run(tmp_path: Path, old_out: Path) -> None:
    """SIGINT to a real `semdialect sim` process while it writes its staging folder: exit
    status 130, one line, the staging folder gone, the old --out exactly as it was."""
    import signal
    import subprocess
    import sys
    import time

    before = snapshot(old_out)
    proc = subprocess.Popen([sys.executable, "-m", "semdialect", *FAST, "--out", str(old_out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not any(n.startswith(".out.new-") for n in os.listdir(tmp_path)):
        assert proc.poll() is None and time.monotonic() < deadline, "no staging folder seen"
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == ["semdialect sim: interrupted"]
    assert snapshot(old_out) == before
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_failure_in_new_out_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(mainjob, "stage_energy", fail)
    assert main([*FAST, "--out", str(tmp_path / "a" / "b" / "out")]) == 130
    assert os.listdir(tmp_path) == []


def test_new_out_keeps_the_umask(tmp_path: Path, umask: int) -> None:
    out = tmp_path / "a" / "out"
    assert main([*FAST, "--out", str(out)]) == 0
    for folder in (tmp_path / "a", out):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o777 & ~umask
    for f in out.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o666 & ~umask, f


def test_replaced_out_keeps_its_mode(tmp_path: Path, old_out: Path, umask: int) -> None:
    old_out.chmod(0o705)
    os.chmod(old_out / "notes.txt", 0o600)
    assert main([*FAST, "--out", str(old_out)]) == 0
    assert stat.S_IMODE(old_out.stat().st_mode) == 0o705
    assert stat.S_IMODE((old_out / "notes.txt").stat().st_mode) == 0o600
    assert stat.S_IMODE((old_out / "summary.md").stat().st_mode) == 0o666 & ~umask


def test_symlinked_out_is_written_through(tmp_path: Path, old_out: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(old_out)
    assert main([*FAST, "--out", str(link)]) == 0
    assert link.is_symlink() and os.readlink(link) == str(old_out)
    assert (old_out / "summary.md").exists() and not (old_out / "area.csv").exists()
    assert (old_out / "notes.txt").read_text() == OLD_RUN["notes.txt"]
    assert sorted(os.listdir(tmp_path)) == ["link", "out"]


# --- the report builder (make report) writes atomically too ---------------------------------

@pytest.fixture(scope="module")
def sim_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim") / "out"
    assert main([*FAST, "--out", str(out)]) == 0
    return out


def _copy(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def test_report_rebuild_failure_leaves_folder(tmp_path: Path, sim_out: Path,
                                              monkeypatch) -> None:
    out = _copy(sim_out, tmp_path / "out")
    from semdialect.reports import plots

    def fail(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(plots, "roofline", fail)  # after several plots were written
    before = snapshot(out)
    with pytest.raises(KeyboardInterrupt):
        report_build.main(["--out", str(out), "--config", "default"])
    assert snapshot(out) == before
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_report_rebuild_replaces_its_files(tmp_path: Path, sim_out: Path) -> None:
    out = _copy(sim_out, tmp_path / "out")
    (out / "area.png").write_text("stale plot of an area.csv that is gone")
    (out / "notes.txt").write_text("mine")
    (out / "summary.md").write_text("old")
    assert report_build.main(["--out", str(out), "--config", "default"]) == 0
    assert not (out / "area.png").exists()
    assert (out / "notes.txt").read_text() == "mine"
    summary = (out / "summary.md").read_text()
    assert summary.startswith("# semdialect summary") and "skipped (--skip-rtl)" in summary
    assert (out / "COMPUTE_REPORT.csv").read_bytes() == (sim_out / "COMPUTE_REPORT.csv"
                                                         ).read_bytes()
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_tested_cycle_rows_read_the_recorded_configuration(tmp_path: Path, capsys) -> None:
    """``semdialect sim``'s model-vs-RTL rows from the Verilator tests' cycle files: the
    model is recomputed for the configuration each file records (a reduced array included);
    a file in the older format (a bare list, without its configuration: possibly cycles of an
    older RTL) is skipped and named."""
    import json

    from semdialect.config import resolve_config
    from semdialect.tb.gemm_run import config_env

    default = resolve_config("default")
    (tmp_path / "default.json").write_text(json.dumps({
        "config": json.loads(config_env(default)),
        # one 8 × 56 tile of N = 8 columns, K = 32, by hand (tests/test_utilization.py): 42
        "gemms": [{"M": 8, "N": 8, "K": 32, "cycles": 42},
                  {"M": 8, "N": 8, "K": 32, "cycles": 41}]}))
    (tmp_path / "old.json").write_text(json.dumps([{"M": 8, "N": 8, "K": 32, "cycles": 37}]))
    rows = mainjob.tested_cycle_rows(tmp_path)
    assert [(r["config"], r["rtl_cycles"], r["model_cycles"]) for r in rows] == [
        ("default", 42, 42), ("default", 41, 42)]
    out = capsys.readouterr().out
    assert "skipped" in out and "old.json" in out
