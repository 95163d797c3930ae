"""``semdialect scalesim export`` and ``semdialect scalesim import``: SCALE-Sim interchange.

* ``scalesim export --config C --workload W --out DIR [--design D] [--clock-mhz F]
  [--elements]``: DIR/topology.csv (the workload as a SCALE-Sim GEMM topology, K' = ⌈K/B⌉),
  DIR/scale.cfg (one core of C as a SCALE-Sim .cfg), DIR/mappings.csv (the mapping our model
  chose per GEMM, row for row with the topology) and DIR/README.txt (the equivalence and how
  to compare SCALE-Sim's reports); :mod:`semdialect.sim.scalesim` and docs/SCALESIM.md.
* ``scalesim import SCALE.cfg --out my.toml [--topology T.csv] [--clock-mhz F]
  [--word-bytes W] [--base C]``: a SCALE-Sim .cfg as our configuration TOML (array, SRAMs,
  DRAM; the rest from the base configuration), ready for ``semdialect sim --config my.toml``.

Every argument and input is checked before any output is touched; the export folder is
staged and swapped in whole (:func:`semdialect.outdir.staged_dir`: the files of DIR that the
export does not own are kept), the imported TOML is written to a temporary file next to
``--out`` and renamed (through a symlink to its target; :func:`semdialect.cli.output.
write_output`). Bad input is one line ``semdialect scalesim: error: ...``, exit status 2.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import Any

from semdialect.cli.common import EPILOG
from semdialect.cli.output import check_paths, is_stdout, write_output
from semdialect.config import Config, resolve_config, shipped_configs
from semdialect.designs import hardware_designs
from semdialect.outdir import check_out_dir, staged_dir
from semdialect.paths import configs_dir
from semdialect.sim.memory import DEFAULT_CLOCK_MHZ, check_fits
from semdialect.sim.model import Design
from semdialect.sim.scalesim import (
    EXPORT_FILES,
    SCALESIM_WORD_BYTES,
    config_toml,
    export_files,
    read_config,
)
from semdialect.sim.workloads import load_workload, workload_path

__all__ = ["add_parsers", "cmd_export", "cmd_import"]


def _mhz(value: str) -> float:
    """``--clock-mhz``: a number of MHz in (0, 100000]."""
    try:
        mhz = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of MHz, got {value!r}") from None
    if not math.isfinite(mhz) or not 0 < mhz <= 1e5:
        raise argparse.ArgumentTypeError(f"expected a number of MHz in (0, 100000], got "
                                         f"{value!r}")
    return mhz


def _word_bytes(value: str) -> float:
    """``--word-bytes``: bytes of one SCALE-Sim word, in (0, 1024]."""
    try:
        nbytes = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of bytes, got {value!r}") from None
    if not math.isfinite(nbytes) or not 0 < nbytes <= 1024:
        raise argparse.ArgumentTypeError(f"expected a number of bytes in (0, 1024], got "
                                         f"{value!r}")
    return nbytes


def add_parsers(subparsers: Any) -> None:
    """Add ``scalesim`` (``export``, ``import``) to the ``semdialect`` subcommands."""
    config_help = ("a shipped configuration (" + ", ".join(shipped_configs()) + ") or a "
                   "configuration .toml file")
    clock_help = (f"clock in MHz (default {DEFAULT_CLOCK_MHZ:g}: the 180 nm timing target); "
                  "turns GB/s into bytes per cycle")
    p = subparsers.add_parser(
        "scalesim", help="SCALE-Sim interchange: export a workload and config, import a .cfg",
        description="Write a workload, one core of a configuration and the mappings our model "
        "chose as SCALE-Sim files (export), or read a SCALE-Sim .cfg into our configuration "
        "TOML (import). docs/SCALESIM.md gives the equivalence: our PE does one B-element "
        "block dot product per cycle where SCALE-Sim's does one MAC, so the exported GEMM has "
        "K' = ceil(K/B).", epilog=EPILOG)
    sub = p.add_subparsers(dest="scalesim_cmd", required=True, metavar="{export,import}",
                           help="export: write SCALE-Sim files of a workload and configuration; "
                           "import: read a SCALE-Sim .cfg into our configuration TOML")

    e = sub.add_parser(
        "export", help="write DIR/topology.csv, scale.cfg, mappings.csv and README.txt",
        description="Write the workload as a SCALE-Sim GEMM topology (one row per GEMM, "
        "K' = ceil(K/B); a GEMM run n > 1 times is named <layer>*<n>), one core of the "
        "configuration as a SCALE-Sim .cfg (words = elements of that GEMM: B FP16 "
        "activations, one quantized weight block, one FP32 output), the tiling our model "
        "chose per GEMM (mappings.csv, row for row with the topology) and README.txt (how to "
        "run SCALE-Sim and compare its reports). DIR is replaced as a whole when every file "
        "is ready; its other files are kept.", epilog=EPILOG)
    e.add_argument("--config", default="default", metavar="NAME|FILE.toml",
                   help=config_help + " (default: default)")
    e.add_argument("--workload", required=True, metavar="NAME|FILE.csv",
                   help="a shipped workload (data/workloads/*.csv stem) or a CSV path "
                   "(layer,M,K,N,count or a SCALE-Sim topology)")
    e.add_argument("--out", required=True, metavar="DIR", help="output folder")
    e.add_argument("--design", default="semanticdialect",
                   choices=[d.name for d in hardware_designs()],
                   help="the design whose block size, block bytes and mappings are exported "
                   "(default semanticdialect: the configuration's own format)")
    e.add_argument("--clock-mhz", type=_mhz, default=DEFAULT_CLOCK_MHZ, metavar="F",
                   help=clock_help)
    e.add_argument("--elements", action="store_true",
                   help="write the element-level topology (K as is) and SCALE-Sim's own "
                   "1-byte words (SRAM kB = our KiB, bandwidth = bytes per cycle): the same "
                   "GEMMs on a one-MAC-per-PE array, not our cycle equivalent")
    e.set_defaults(func=cmd_export)

    i = sub.add_parser(
        "import", help="read a SCALE-Sim .cfg into our configuration TOML",
        description="Read a SCALE-Sim .cfg (v2 or v3) as SCALE-Sim does and write our "
        "configuration TOML: ArrayHeight/ArrayWidth -> rows/cols (lanes and drain width "
        "fitted to the array), Ifmap/Filter/OfmapSramSzkB -> act/weight/out_sram_kib "
        "(kB x word bytes), Bandwidth (USER, words/cycle) -> dram_gbps at the clock; "
        "InterfaceBandwidth CALC -> an unbounded DRAM. Dataflow ws/is, sparsity and arrays "
        "above 128 cannot be mapped (error). Everything else (B, formatbook, pipeline) comes "
        "from --base.", epilog=EPILOG)
    i.add_argument("cfg", metavar="SCALE.cfg", help="a SCALE-Sim configuration file")
    i.add_argument("--out", required=True, metavar="FILE.toml",
                   help="where our configuration TOML is written")
    i.add_argument("--topology", default=None, metavar="T.csv",
                   help="a SCALE-Sim topology to check with the configuration (read as "
                   "'semdialect sim --workload T.csv' reads it; named in the TOML's comments)")
    i.add_argument("--clock-mhz", type=_mhz, default=DEFAULT_CLOCK_MHZ, metavar="F",
                   help=clock_help)
    i.add_argument("--word-bytes", type=_word_bytes, default=float(SCALESIM_WORD_BYTES),
                   metavar="W", help="bytes of one SCALE-Sim word (default 1, SCALE-Sim's own "
                   "word_size)")
    i.add_argument("--base", default="default", metavar="NAME|FILE.toml",
                   help=config_help + " that gives every key SCALE-Sim has no counterpart "
                   "for (default: default)")
    i.set_defaults(func=cmd_import)


def _config_files(option: str, spec: str, cfg: Config) -> dict[str, str]:
    """The input files behind ``option`` ``spec`` (label → path): its TOML and a formatbook
    file (as :func:`~semdialect.config.resolve_config`: a shipped name wins over a file)."""
    path = configs_dir() / f"{spec}.toml" if spec in shipped_configs() else Path(spec)
    files = {option: str(path)} if path.is_file() else {}
    if os.path.isfile(cfg.formatbook):
        files[f"{option} formatbook"] = cfg.formatbook
    return files


def cmd_export(args: argparse.Namespace) -> int:
    """``semdialect scalesim export``: DIR/topology.csv, scale.cfg, mappings.csv, README.txt."""
    target = check_out_dir("--out", args.out)
    cfg = resolve_config(args.config)
    wl_path = workload_path(args.workload)
    inputs = {"--workload": str(wl_path), **_config_files("--config", args.config, cfg)}
    for name, path in inputs.items():
        real = Path(os.path.realpath(path))
        if real.parent == target and real.name in EXPORT_FILES:
            raise ValueError(f"--out: {args.out} holds {name} {path}, which the export would "
                             "replace; choose another folder")
    gemms = load_workload(wl_path)
    design = Design.of(args.design, cfg)
    texts = export_files(cfg, gemms, design=design, clock_mhz=args.clock_mhz,
                         elements=args.elements, workload=args.workload)
    with staged_dir(args.out, "--out") as staging:
        for name, text in texts.items():
            (staging.path / name).write_text(text)
        staging.carry_over(lambda name: name not in EXPORT_FILES)
    print(f"{args.workload}: {len(gemms)} GEMMs on {cfg.name} ({design.name}, "
          f"{args.clock_mhz:g} MHz) -> {args.out}/{{{','.join(EXPORT_FILES)}}}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """``semdialect scalesim import``: a SCALE-Sim .cfg -> our configuration TOML."""
    base = resolve_config(args.base)
    inputs = {"SCALE.cfg": args.cfg, **_config_files("--base", args.base, base)}
    if args.topology is not None:
        inputs["--topology"] = args.topology
    check_paths({"--out": args.out}, inputs)
    imported = read_config(args.cfg, clock_mhz=args.clock_mhz, word_bytes=args.word_bytes)
    try:
        cfg = imported.config(base)
    except ValueError as exc:
        raise ValueError(f"{args.cfg}: the imported values do not form a valid configuration "
                         f"on base {base.name!r}: {exc}") from None
    try:
        check_fits(Design.of("semanticdialect", cfg))
    except ValueError as exc:
        raise ValueError(f"{exc}; imported from {args.cfg}: our tile is rows x cols*acc_stages "
                         f"= {cfg.rows}x{cfg.tile_cols} (acc_stages {cfg.acc_stages} of base "
                         f"{base.name!r}), so choose a --base with fewer acc_stages or larger "
                         "SRAMs") from None
    comments = [f"imported from SCALE-Sim {args.cfg} by 'semdialect scalesim import' "
                f"(clock {args.clock_mhz:g} MHz, {args.word_bytes:g}-byte words, base "
                f"{base.name!r}); docs/SCALESIM.md",
                *(f"note: {n}" for n in imported.notes)]
    summary = ""
    if args.topology is not None:
        gemms = load_workload(args.topology)
        gmacs = sum(g.macs for g in gemms) / 1e9
        summary = f"; {args.topology}: {len(gemms)} GEMMs, {gmacs:.4g} GMACs"
        comments.append(f"workload {args.topology} ({len(gemms)} GEMMs, {gmacs:.6g} GMACs): "
                        f"semdialect sim --config {args.out} --workload {args.topology}")
    text = config_toml(cfg, comments)
    write_output(args.out, lambda fh: fh.write(text.encode()))
    print(f"{args.cfg}: {cfg.rows}x{cfg.cols}, SRAM {cfg.act_sram_kib}/{cfg.weight_sram_kib}/"
          f"{cfg.out_sram_kib} KiB, DRAM {cfg.dram_gbps:g} GB/s -> {args.out}{summary}",
          file=sys.stderr if is_stdout(args.out) else sys.stdout)
    for note in imported.notes:
        print(f"semdialect scalesim: note: {note}", file=sys.stderr)
    return 0
