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
    assert args.config == Config() and isinstance(args.config, Config)
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
