"""``--config`` takes a shipped configuration's name or a path, from any working directory;
configuration names are plain identifiers."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from semdialect.cli import build_parser, main
from semdialect.config import Config, load_config, resolve_config, shipped_configs
from semdialect.paths import configs_dir

REPO = Path(__file__).resolve().parents[1]


def test_shipped_names_resolve_to_the_shipped_files() -> None:
    assert set(shipped_configs()) >= {"default", "small", "large", "blockdialect"}
    for name in shipped_configs():
        assert resolve_config(name) == load_config(configs_dir() / f"{name}.toml")


def test_a_path_still_works(tmp_path) -> None:
    mine = tmp_path / "mine.toml"
    mine.write_text((configs_dir() / "small.toml").read_text().replace('"small"', '"mine"'))
    cfg = resolve_config(mine)
    assert cfg.name == "mine" and cfg.rows == 2
    assert resolve_config(str(configs_dir() / "large.toml")) == resolve_config("large")


def test_unknown_config_lists_the_shipped_names() -> None:
    with pytest.raises(ValueError, match="config 'nope'.*blockdialect, default, large, small"):
        resolve_config("nope")


@pytest.mark.parametrize("cmd", ["sim", "verilog"])
def test_config_is_parsed_once_at_the_edge(cmd: str) -> None:
    """The parser hands the commands a Config (default: the shipped `default`)."""
    args = build_parser().parse_args([cmd])
    assert isinstance(args.config, Config)
    assert args.config == load_config(configs_dir() / "default.toml")
    assert build_parser().parse_args([cmd, "--config", "small"]).config.name == "small"


@pytest.mark.parametrize("value, words", [("nope", ["--config", "shipped"]),
                                          ("missing.toml", ["--config", "missing.toml"])])
def test_bad_config_is_one_line(tmp_path, capsys, value: str, words: list[str]) -> None:
    assert main(["verilog", "--config", value, "--out", str(tmp_path / "v")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert all(w in err for w in words), err
    assert not (tmp_path / "v").exists()


def test_sim_default_config_works_outside_the_repository(tmp_path) -> None:
    """`semdialect sim` with the default --config from a folder that has no configs/."""
    r = subprocess.run([sys.executable, "-m", "semdialect", "sim", "--out", "out",
                        "--skip-rtl", "--skip-area"], cwd=tmp_path, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    assert "config default" in r.stdout and (tmp_path / "out" / "summary.md").is_file()
    (tmp_path / "out" / "summary.md").unlink()
    r = subprocess.run([sys.executable, "-m", "semdialect.reports.build", "--out", "out"],
                       cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out" / "summary.md").is_file()


@pytest.mark.parametrize("name", ["../../x", "a b", "", "a/b", ".hidden", "-x", "x\n", "é",
                                  5, None, "x" * 65])
def test_config_name_must_be_a_plain_identifier(name: object) -> None:
    with pytest.raises(ValueError, match="^name: must be a plain identifier"):
        Config(name=name)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["default", "small", "my-config", "c16_4x1", "B64"])
def test_plain_names_are_accepted(name: str) -> None:
    assert Config(name=name).name == name


@pytest.mark.parametrize("line", ['name = "../../escaped"', 'name = "a b"', "name = 5",
                                  'name = ""'])
def test_bad_name_in_a_file_writes_nothing(tmp_path, capsys, line: str) -> None:
    body = (configs_dir() / "small.toml").read_text().replace('name = "small"', line)
    cfg = tmp_path / "a" / "b" / "bad.toml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text(body)
    with pytest.raises(ValueError, match="name: must be a plain identifier"):
        load_config(cfg)
    assert main(["verilog", "--config", str(cfg), "--out", str(tmp_path / "a" / "b" / "v")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "name" in err, err
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == [
        "a", "a/b", "a/b/bad.toml"]


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
@pytest.mark.parametrize("target", ["sim", "verilog", "report"])
def test_makefile_passes_config_through(target: str) -> None:
    """`make sim CONFIG=small` (a name) and CONFIG=path both reach --config unchanged."""
    for value in ("small", "configs/small.toml"):
        r = subprocess.run(["make", "-n", "--no-print-directory", target,
                            f"CONFIG={value}"], cwd=REPO, capture_output=True,
                           text=True)
        assert r.returncode == 0, r.stderr
        assert f"--config {value}" in r.stdout.splitlines()[-1], r.stdout


@pytest.mark.parametrize("section, key, value", [
    ("array", "drain_width", 0), ("array", "drain_width", 3), ("array", "drain_width", 12),
    ("array", "drain_width", 128), ("frontend", "lanes", 0), ("frontend", "lanes", 3),
    ("frontend", "lanes", 16),
])
def test_bad_drain_width_or_lanes_is_one_line_exit_2(tmp_path, capsys, section: str, key: str,
                                                    value: int) -> None:
    """A drain width or lane count that does not divide the 8×8 array, or is 0: exit 2, one
    line naming the key, nothing written."""
    text = (configs_dir() / "default.toml").read_text()
    line = next(ln for ln in text.splitlines() if ln.startswith(f"{key} ="))
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace(line, f"{key} = {value}"))
    assert f"[{section}]" in text
    with pytest.raises(ValueError, match=key):
        load_config(bad)
    assert main(["verilog", "--config", str(bad), "--out", str(tmp_path / "v")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert key in err and f"got {value}" in err, err
    assert not (tmp_path / "v").exists()


def test_missing_lanes_names_the_default(tmp_path) -> None:
    """A 2×2 config that omits ``lanes`` gets the default 8, which does not fit: the message
    says it is the default and which key to set."""
    text = (configs_dir() / "small.toml").read_text()
    mine = tmp_path / "mine.toml"
    mine.write_text("\n".join(ln for ln in text.splitlines() if not ln.startswith("lanes")))
    with pytest.raises(ValueError, match=r"lanes: must divide rows=2.*the default; set "
                                         r"\[frontend\] lanes"):
        load_config(mine)


def test_drain_geometry_of_the_shipped_configs() -> None:
    for name in shipped_configs():
        cfg = resolve_config(name)
        assert cfg.drain_rows * cfg.drain_cols == cfg.drain_width
        assert cfg.rows % cfg.lanes == 0 and cfg.rows % cfg.drain_rows == 0


@pytest.mark.parametrize("key, value", [
    ("acc_stages", 0), ("acc_stages", 8), ("pe_product_stages", 0), ("pe_scale_stages", 4),
    ("decoder_stages", -1), ("selector_stages", 7), ("acc_stages", "2"), ("acc_stages", True),
    ("addend_stages", -1), ("addend_stages", 9),
])
def test_bad_pipeline_key_is_one_line_exit_2(tmp_path, capsys, key: str, value: object) -> None:
    """Every ``[pipeline]`` key is checked: exit 2, one line naming the key, nothing written."""
    text = (configs_dir() / "small.toml").read_text()
    line = next(ln for ln in text.splitlines() if ln.startswith(f"{key} ="))
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace(line, f"{key} = {value!r}".replace("'", '"').replace(
        "True", "true")))
    with pytest.raises(ValueError, match=key):
        load_config(bad)
    assert main(["verilog", "--config", str(bad), "--out", str(tmp_path / "v")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and key in err, err
    assert not (tmp_path / "v").exists()


def test_omitted_pipeline_keys_are_the_unpipelined_design(tmp_path) -> None:
    """A configuration without ``[pipeline]`` is the design before pipelining (latencies 3,
    C + 2 and 0 — the combinational output adder —, one output per PE); the shipped ones
    set every key."""
    from semdialect.config import PIPELINE_RANGES
    from semdialect.rtl.timing import Pipeline

    text = (configs_dir() / "small.toml").read_text().split("[pipeline]")[0]
    mine = tmp_path / "mine.toml"
    mine.write_text(text)
    cfg = load_config(mine)
    assert Pipeline.of(cfg) == Pipeline() and cfg.tile_cols == cfg.cols
    assert cfg.addend_stages == Pipeline().output_latency == 0
    for name in shipped_configs():
        body = (configs_dir() / f"{name}.toml").read_text()
        assert all(f"\n{key} =" in body for key in PIPELINE_RANGES), name


def test_drain_width_must_fit_the_c_slow_tile(tmp_path) -> None:
    """With d = acc_stages the tile is rows × cols·d: the drain width is checked against it
    and the message names drain_width and acc_stages."""
    text = (configs_dir() / "small.toml").read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace("acc_stages = 2", "acc_stages = 3"))
    with pytest.raises(ValueError, match=r"drain_width: must divide the tile's "
                                         r"cols\*acc_stages=6 columns"):
        load_config(bad)
