"""``semdialect sweep`` (sim/sweep.py, semdialect/cli/sweep.py): grid expansion, spec
validation (one line, exit 2, nothing created), the content cache (a rerun computes nothing, a
changed input recomputes), loky and a real two-worker Dask LocalCluster giving the same
results.csv, the Pareto fronts against a brute-force dominance check, and ``--help``.

Runs use the ``small`` configuration, a two-row workload, ``--area none`` and three tiny
stand-in tensors for the SQNR column (the CLI's shipped tensors are replaced), so each takes
a second or two (the Dask one a few more for the cluster)."""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path

import numpy as np
import pytest

import semdialect.cli.sweep as cli_sweep
import semdialect.sim.sweep as sweep
from semdialect.cli import main
from semdialect.config import load_config

REPO = Path(__file__).resolve().parents[1]
SMALL = load_config(REPO / "configs" / "small.toml")
DEFAULT = load_config(REPO / "configs" / "default.toml")

WORKLOAD = "layer,M,K,N,count,static\nproj,40,64,24,3,W\nattn.qk,16,32,16,2,none\n"


@pytest.fixture(autouse=True)
def tiny_tensors(monkeypatch) -> None:
    """Three small seeded tensors instead of the shipped ones (the SQNR path is the same)."""
    rng = np.random.default_rng(7)
    tensors = {f"t{i}": rng.standard_normal((8, 64)).astype(np.float32) * (i + 1)
               for i in range(3)}
    monkeypatch.setattr(cli_sweep, "real_tensors", lambda: tensors)


def write_spec(folder: Path, grid: str, sweep_extra: str = "", name: str = "spec.toml"
               ) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tiny.csv").write_text(WORKLOAD)
    path = folder / name
    workloads = "" if "workloads" in sweep_extra else 'workloads = ["tiny.csv"]\n'
    path.write_text(f'[sweep]\nbase = "small"\n{workloads}{sweep_extra}\n[grid]\n{grid}\n')
    return path


GRID = 'array = ["2x2", "4x4"]\nact_sram_kib = [16, 32]\n'


def run(spec: Path, out: Path, cache: Path, *extra: str) -> int:
    return main(["sweep", str(spec), "--out", str(out), "--cache", str(cache), "--area", "none",
                 *extra])


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


# ------------------------------------------------------------------------------ grid and spec


def test_grid_expands_in_product_order_with_the_stated_rules(tmp_path) -> None:
    spec = sweep.load_spec(write_spec(tmp_path, GRID + 'formatbook = ["dfp4"]\n'))
    plan = sweep.plan_sweep(spec)
    got = [(e.point.index, dict(e.point.params)["array"], dict(e.point.params)["act_sram_kib"])
           for e in plan.entries]
    assert got == [(0, "2x2", 16), (1, "2x2", 32), (2, "4x4", 16), (3, "4x4", 32)]
    four = plan.entries[2].point.cfg
    assert (four.rows, four.cols, four.act_sram_kib) == (4, 4, 16)
    assert four.lanes == 4  # small: 2 lanes on 2 rows, one per row -> 4 on 4 rows
    assert four.drain_width == SMALL.on_array(4, 4).drain_width
    assert plan.jobs == 4
    # a formatbook on the grid without formats_per_cycle: the base's, capped at K
    cfg = sweep.point_config(DEFAULT, {"formatbook": "dfp4"})
    assert (cfg.formatbook, cfg.formats_per_cycle) == ("dfp4", 16)
    # system keys never change the core
    cfg = sweep.point_config(DEFAULT, {"cores": 4, "dram_gbps": 51.2, "out_sram_width": None})
    assert cfg.core() == DEFAULT.core() and cfg.cores == 4 and cfg.out_sram_width is None


@pytest.mark.parametrize(("base_lanes", "base_rows", "rows", "lanes"), [
    (8, 8, 16, 16), (8, 8, 12, 12), (4, 8, 6, 3), (4, 8, 10, 5), (4, 8, 5, 1), (2, 2, 1, 1),
])
def test_scaled_lanes(base_lanes: int, base_rows: int, rows: int, lanes: int) -> None:
    base = DEFAULT.on_array(base_rows, 8)
    base = base.__class__(**{**base.to_dict(), "lanes": base_lanes})
    assert sweep.scaled_lanes(base, rows) == lanes


BAD_SPECS = [
    ("unknown grid key", GRID + "colour = [1]\n", "", "[grid] colour: unknown key"),
    ("unknown sweep key", GRID, "speed = 3", "[sweep] speed: unknown key"),
    ("empty list", 'array = []\n', "", "array: empty list"),
    ("wrong type", 'act_sram_kib = ["big"]\n', "", "act_sram_kib: expected an integer"),
    ("bad array", 'array = ["8by8"]\n', "", 'array: expected "ROWSxCOLS"'),
    ("duplicate", 'cores = [1, 1]\n', "", "cores: duplicate value 1"),
    ("unknown workload", GRID, 'workloads = ["nosuch"]', "workloads: workload: unknown"),
    ("unknown design", GRID, 'designs = ["int4"]', "designs: unknown hardware design 'int4'"),
    ("bad clock", GRID, "clock_mhz = -5", "clock_mhz"),
    ("invalid point", 'formats_per_cycle = [4, 3]\n', "",
     "grid point 1 (formats_per_cycle=3): formats_per_cycle: must divide"),
    ("does not fit its SRAM", 'array = ["2x2", "128x128"]\n', "",
     "grid point 1 (array=128x128), design semanticdialect: out_sram_kib"),
]


@pytest.mark.parametrize(("what", "grid", "extra", "message"), BAD_SPECS,
                         ids=[b[0] for b in BAD_SPECS])
def test_bad_spec_one_line_exit_2_nothing_created(tmp_path, capsys, what, grid, extra,
                                                  message) -> None:
    spec = write_spec(tmp_path / "in", grid, extra)
    out, cache = tmp_path / "out", tmp_path / "cache"
    assert run(spec, out, cache) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("semdialect sweep: error: "), err
    assert message in err, err
    assert not out.exists() and not cache.exists()


def test_bad_toml_and_bad_flags(tmp_path, capsys) -> None:
    spec = tmp_path / "bad.toml"
    spec.write_text("[grid\n")
    assert run(spec, tmp_path / "out", tmp_path / "c") == 2
    assert "not valid TOML" in capsys.readouterr().err
    good = write_spec(tmp_path, GRID)
    assert run(good, tmp_path / "out", tmp_path / "c", "--engine", "loky", "--scheduler",
               "tcp://127.0.0.1:1") == 2
    assert "--scheduler" in capsys.readouterr().err
    assert run(good, tmp_path / "out", tmp_path / "c", "--workers", "0") == 2
    assert "--workers" in capsys.readouterr().err
    assert run(good, tmp_path / "out", tmp_path / "out" / "cache") == 2
    assert "--cache" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_failed_run_leaves_the_previous_output_whole(tmp_path, capsys) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.csv").write_text("old\n")
    (out / "notes.txt").write_text("mine\n")
    spec = write_spec(tmp_path, 'array = []\n')
    assert run(spec, out, tmp_path / "cache") == 2
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "results.csv"]
    assert (out / "results.csv").read_text() == "old\n"
    # a good run replaces the sweep's files and keeps the user's
    assert run(write_spec(tmp_path, GRID), out, tmp_path / "cache") == 0
    assert (out / "notes.txt").read_text() == "mine\n"
    assert {"results.csv", "pareto.csv", "pareto.png", "summary.md", "sweep.json"} <= {
        p.name for p in out.iterdir()}


def test_skip_invalid_lists_the_skipped_points(tmp_path) -> None:
    spec = write_spec(tmp_path, 'array = ["2x2", "128x128"]\nformats_per_cycle = [4, 3]\n',
                      "skip_invalid = true")
    out = tmp_path / "out"
    assert run(spec, out, tmp_path / "cache") == 0
    skipped = read_csv(out / "skipped.csv")
    assert [(s["point"], s["array"], s["formats_per_cycle"]) for s in skipped] == [
        ("1", "2x2", "3"), ("2", "128x128", "4"), ("3", "128x128", "3")]
    assert "out_sram_kib" in skipped[1]["reason"] and skipped[1]["design"] == "semanticdialect"
    assert "formats_per_cycle" in skipped[0]["reason"]
    assert {r["point"] for r in read_csv(out / "results.csv")} == {"0"}


def test_a_formatbook_file_on_the_grid(tmp_path) -> None:
    """A formatbook file (relative to the spec) is a grid value: its K caps the formats per
    cycle, its SQNR is its own, and editing the file recomputes its jobs."""
    book = tmp_path / "k1.toml"
    book.write_text((REPO / "configs" / "formatbooks" / "k1_e2m1.toml").read_text())
    spec = write_spec(tmp_path, 'formatbook = ["dfp4", "k1.toml"]\n')
    cache = tmp_path / "cache"
    assert run(spec, tmp_path / "a", cache) == 0
    rows = read_csv(tmp_path / "a" / "results.csv")
    assert [Path(r["formatbook"]).name for r in rows] == ["dfp4", "k1.toml"]
    assert rows[0]["sqnr_db"] != rows[1]["sqnr_db"]
    plan = sweep.plan_sweep(sweep.load_spec(spec))
    assert [e.point.cfg.formats_per_cycle for e in plan.entries] == [4, 1]
    book.write_text(book.read_text().replace("[0, 1, 2, 3, 4, 6, 8, 12]",
                                             "[0, 1, 2, 3, 4, 6, 8, 10]"))
    assert run(spec, tmp_path / "b", cache) == 0
    stats = json.loads((tmp_path / "b" / "sweep.json").read_text())
    assert (stats["cached"], stats["computed"]) == (2, 2)  # dfp4's step and accuracy jobs


# ------------------------------------------------------------------------------------- cache


def test_rerun_is_all_cached_and_a_changed_input_recomputes(tmp_path) -> None:
    spec = write_spec(tmp_path, GRID)
    cache = tmp_path / "cache"
    assert run(spec, tmp_path / "a", cache) == 0
    first = json.loads((tmp_path / "a" / "sweep.json").read_text())
    assert (first["cached"], first["computed"]) == (0, 4 + 1)  # 4 step jobs + 1 accuracy job
    assert run(spec, tmp_path / "b", cache) == 0
    second = json.loads((tmp_path / "b" / "sweep.json").read_text())
    assert (second["cached"], second["computed"]) == (5, 0)
    rows_a, rows_b = read_csv(tmp_path / "a" / "results.csv"), read_csv(
        tmp_path / "b" / "results.csv")
    assert [r["job"] for r in rows_b] == ["cached"] * 4
    assert [{**r, "job": ""} for r in rows_a] == [{**r, "job": ""} for r in rows_b]
    # a new grid value: only its points are computed
    spec = write_spec(tmp_path, 'array = ["2x2", "4x4"]\nact_sram_kib = [16, 32, 64]\n')
    assert run(spec, tmp_path / "c", cache) == 0
    third = json.loads((tmp_path / "c" / "sweep.json").read_text())
    assert (third["cached"], third["computed"]) == (5, 2)
    # another clock changes every step job (not the accuracy job)
    spec = write_spec(tmp_path, GRID, "clock_mhz = 125.0")
    assert run(spec, tmp_path / "d", cache) == 0
    fourth = json.loads((tmp_path / "d" / "sweep.json").read_text())
    assert (fourth["cached"], fourth["computed"]) == (1, 4)
    slow = read_csv(tmp_path / "d" / "results.csv")
    assert float(slow[0]["seconds_per_step"]) > float(rows_a[0]["seconds_per_step"])
    # every entry is one small JSON file named by its key
    files = list((cache / "jobs").rglob("*.json"))
    assert len(files) == 5 + 2 + 4 and not list((cache / "jobs").rglob("*.part"))


def test_keys_follow_their_inputs() -> None:
    key = sweep.step_key(SMALL, "semanticdialect", "a" * 64, 250.0, "m")
    assert key == sweep.step_key(SMALL.__class__(**{**SMALL.to_dict(), "name": "other"}),
                                 "semanticdialect", "a" * 64, 250.0, "m")
    changed = [sweep.step_key(SMALL.on_array(4, 4), "semanticdialect", "a" * 64, 250.0, "m"),
               sweep.step_key(SMALL, "mxfp4", "a" * 64, 250.0, "m"),
               sweep.step_key(SMALL, "semanticdialect", "b" * 64, 250.0, "m"),
               sweep.step_key(SMALL, "semanticdialect", "a" * 64, 200.0, "m"),
               sweep.step_key(SMALL, "semanticdialect", "a" * 64, 250.0, "n")]
    assert len({key, *changed}) == 6
    # the model version covers the memory model's source
    assert ("sim", "memory.py") in sweep.MODEL_SOURCES
    assert len(sweep.model_version()) == 64


# ----------------------------------------------------------------------------------- engines


def test_loky_and_a_local_dask_cluster_give_the_same_results(tmp_path) -> None:
    spec = write_spec(tmp_path, GRID)
    assert run(spec, tmp_path / "loky", tmp_path / "c1", "--engine", "loky",
               "--workers", "2") == 0
    assert run(spec, tmp_path / "dask", tmp_path / "c2", "--engine", "dask",
               "--workers", "2") == 0
    loky = (tmp_path / "loky" / "results.csv").read_bytes()
    assert loky == (tmp_path / "dask" / "results.csv").read_bytes()
    stats = json.loads((tmp_path / "dask" / "sweep.json").read_text())
    assert "LocalCluster, 2" in stats["engine"] and stats["computed"] == 5


def test_batches_cover_every_item_once() -> None:
    items = list(range(1000))
    parts = sweep.batches(items, 2)
    assert list(itertools.chain.from_iterable(parts)) == items
    assert max(map(len, parts)) <= sweep.MAX_BATCH and len(parts) >= 2 * sweep.TASKS_PER_WORKER
    assert sweep.batches([], 2) == []


# ------------------------------------------------------------------------------------ Pareto


def brute_front(points: np.ndarray) -> list[bool]:
    """Dominance by the definition, with plain loops (all columns minimised)."""
    n, k = points.shape
    out = []
    for i in range(n):
        dominated = False
        for j in range(n):
            if all(points[j, c] <= points[i, c] for c in range(k)) and any(
                    points[j, c] < points[i, c] for c in range(k)):
                dominated = True
                break
        out.append(not dominated)
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pareto_mask_against_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    pts = rng.integers(0, 6, size=(300, 4)).astype(float)  # many ties and duplicates
    assert pareto_list(pts) == brute_front(pts)
    assert pareto_list(pts[:1]) == [True]


def pareto_list(pts: np.ndarray) -> list[bool]:
    return [bool(v) for v in sweep.pareto_mask(pts)]


def on_front(front: list[dict[str, str]], workload: str) -> set[tuple[str, str]]:
    """(point, design) of ``workload``'s front rows, merged equivalent points included."""
    return {(p, r["design"]) for r in front if r["workload"] == workload
            for p in [r["point"], *r["equivalent_points"].split()]}


def test_pareto_csv_against_brute_force(tmp_path) -> None:
    designs = 'designs = ["semanticdialect", "mxfp4"]'
    spec = write_spec(tmp_path, 'array = ["2x2", "4x4"]\nact_sram_kib = [16, 64]\n'
                      'dram_gbps = [1.0, 25.6]\nformatbook = ["dfp4", "sd32"]\n'
                      'formats_per_cycle = [4]\n', designs)
    out = tmp_path / "out"
    assert run(spec, out, tmp_path / "cache") == 0
    rows = read_csv(out / "results.csv")
    front = read_csv(out / "pareto.csv")
    objectives = ("seconds_per_step", "energy_j_per_step")
    pts = np.array([[float(r[c]) for c in objectives] + [-float(r["sqnr_db"])] for r in rows])
    expected = {(r["point"], r["design"]) for r, on in zip(rows, brute_front(pts), strict=True)
                if on}
    assert on_front(front, "tiny") == expected
    assert 0 < len(expected) < len(rows)
    # one workload: its geometric mean is itself
    assert on_front(front, "geomean") == expected
    # MXFP4 ignores the formatbook: its equal rows are merged, the other points listed
    merged = [r for r in front if r["design"] == "mxfp4" and r["equivalent_points"]]
    assert merged and all(len(r["equivalent_points"].split()) == 1 for r in merged)
    # the SQNR differs between the formatbooks (the accuracy column is per format)
    sqnr = {r["formatbook"]: r["sqnr_db"] for r in rows if r["design"] == "semanticdialect"}
    assert len(set(sqnr.values())) == 2


# -------------------------------------------------------------------------------------- help


def test_help_names_the_grid_engines_and_outputs(capsys) -> None:
    assert main(["sweep", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for word in ("formatbook", "formats_per_cycle", "array", "act_sram_kib", "dram_gbps",
                 "cores", "fused_attention", "loky", "dask", "--scheduler", "--workers",
                 "--cache", "results.csv", "pareto.csv", "pareto.png", "summary.md",
                 "skip_invalid", "--area"):
        assert word in text, word


def test_shipped_specs_are_valid_and_the_bench_has_1000_configurations(capsys) -> None:
    for path in sorted((REPO / "configs" / "sweeps").glob("*.toml")):
        plan = sweep.plan_sweep(sweep.load_spec(path))
        assert not plan.skipped, path
        if path.stem == "bench":
            assert plan.spec.grid_size >= 1000 and len(plan.spec.workloads) == 7
