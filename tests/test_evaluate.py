"""semdialect eval: metrics by hand, shortcuts checked against golden, a quick smoke run."""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from semdialect.designs import DESIGNS, configured_design
from semdialect.evaluation.decomposition import STUDY_RHOS
from semdialect.evaluation.fidelity import (
    CAL_SENTENCES,
    MAX_BITS,
    TARGET_MARGIN_DB,
    rotated_linears,
    video_rotated,
)
from semdialect.evaluation.metrics import (
    PooledSqnr,
    average_ranks,
    embedding_metrics,
    spearman,
    temporal_consistency,
)
from semdialect.evaluation.minilm import load_minilm
from semdialect.evaluation.study import FULL_SENTENCES, run_eval
from semdialect.evaluation.variants import CONFIG, FIDELITY_RHO, VARIANTS, reconstruct
from semdialect.golden import gemm_quantized, quantize, quantize_weights, sqnr_db
from semdialect.golden.blocks import to_fp16
from semdialect.golden.decompose import decomposed_linear, residual
from semdialect.golden.metrics import sqnr_db_from_sums
from semdialect.golden.rotated import RotatedFormat
from semdialect.golden.selector_saliency import err_saliency_quantized, top_rows
from semdialect.reports import accuracy

# --------------------------------------------------------------------------------- Spearman


def test_average_ranks_ties() -> None:
    np.testing.assert_array_equal(average_ranks([10, 20, 20, 5]), [2, 3.5, 3.5, 1])
    np.testing.assert_array_equal(average_ranks([7, 7, 7]), [2, 2, 2])
    np.testing.assert_array_equal(average_ranks([3, 1, 2, 1, 3]), [4.5, 1.5, 3, 1.5, 4.5])


def test_spearman_hand_example_with_ties() -> None:
    # ranks x = [1, 2.5, 2.5, 4], y = [1, 3, 2, 4]; centred: [-1.5, 0, 0, 1.5] and
    # [-1.5, 0.5, -0.5, 1.5]; r = 4.5 / sqrt(4.5 · 5) = 3 / sqrt(10)
    assert spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(3 / math.sqrt(10), abs=1e-15)
    assert spearman([1, 2, 3, 4], [10, 20, 35, 100]) == pytest.approx(1.0)  # monotone
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))


# ---------------------------------------------------------------------- temporal consistency


def test_temporal_consistency_hand_case() -> None:
    # layout (T, H, W) = (2, 1, 2): tokens 0, 1 are frame 0; tokens 2, 3 frame 1.
    x = np.array([
        [2.0, 0.0, 0.0, 0.0],      # (0, 0, 0)
        [1.0, 0.0, 0.0, 0.0],      # (0, 0, 1)
        [2.0, 0.0, 0.0, 0.015625],  # (1, 0, 0): ||Δ|| = 1/64 < 0.01·2: stable
        [0.0, 1.0, 0.0, 0.0],      # (1, 0, 1): ||Δ|| = √2: not stable
    ])
    deq = np.array([
        [2.0, 0.0, 0.0, 0.0],
        [1.0, 0.0, 0.0, 0.0],
        [2.0, 0.0, 0.0, 0.25],     # mean|Δdeq| = 0.0625, mean|Δx| = 1/256
        [0.0, 1.0, 0.0, 0.0],
    ])
    codes = np.array([[1, 0, 0, 0], [1, 0, 0, 0], [1, 0, 0, 2], [0, 1, 0, 0]])
    dialect = np.array([[3], [4], [3], [5]])
    t = temporal_consistency(x, (2, 1, 2), deq, codes, dialect)
    assert (t.pairs, t.stable) == (2, 1)
    assert t.code_changed == 1.0  # the stable pair's last code changed
    assert t.dialect_changed == 0.0  # its dialect did not (the unstable pair's does not count)
    assert t.excess == pytest.approx(0.0625 - 1 / 256)

    same = temporal_consistency(x, (2, 1, 2), x, codes[[0, 1, 0, 3]])
    assert same.code_changed == 0.0 and same.excess == 0.0 and math.isnan(same.dialect_changed)

    # the test is strict: ||Δ|| = rel·||x_{t-1}|| is not stable, and no pair leaves nan
    edge = np.array([[2.0, 0], [3.0, 0]])
    t = temporal_consistency(edge, (2, 1, 1), edge, edge, rel=0.5)
    assert t.stable == 0 and math.isnan(t.code_changed) and math.isnan(t.excess)
    with pytest.raises(ValueError, match="layout"):
        temporal_consistency(x, (3, 1, 2), deq, codes)


# ------------------------------------------------------------ shortcuts checked against golden


def test_decomposed_linear_accepts_prequantized_weights(rng) -> None:
    x = rng.standard_normal((12, 64)).astype(np.float32)
    w = rng.standard_normal((64, 16)).astype(np.float32)
    a = rng.random((2, 12, 12))
    plain = decomposed_linear(x, w, "sd32", attn=a, rho="0.25")
    cached = decomposed_linear(x, w, "sd32", attn=a, rho="0.25", qw=quantize_weights(w, "sd32"))
    np.testing.assert_array_equal(plain.y, cached.y)
    assert plain.bits_per_element == cached.bits_per_element
    with pytest.raises(ValueError, match="qw"):
        decomposed_linear(x, w[:, :8], "sd32", attn=a, qw=quantize_weights(w, "sd32"))


def test_study_shortcut_equals_decomposed_linear(rng) -> None:
    """The study quantizes every row's residual once and picks rows; golden does it per set."""
    x = (rng.standard_normal((20, 96)) * np.exp(rng.uniform(-3, 3, (20, 1)))).astype(np.float32)
    w = rng.standard_normal((96, 24)).astype(np.float32)
    qw = quantize_weights(w, "sd32")
    x16 = to_fp16(x, "x", 32)
    qx = quantize(x16, "sd32")
    qr = quantize(residual(x16, qx), "sd32")
    y_main = gemm_quantized(qx, qw)
    y_all = y_main + gemm_quantized(qr, qw)
    for salient in (np.array([0, 7, 19]), np.sort(rng.choice(20, 5, replace=False))):
        ref = decomposed_linear(x, w, "sd32", salient=salient, qw=qw)
        want = y_main.copy()
        want[salient] = y_all[salient]
        np.testing.assert_array_equal(ref.y, want)
        np.testing.assert_array_equal(ref.qr.dequant, qr.dequant[salient])


# ----------------------------------------------------------------------- pooled SQNR, cosine


def test_pooled_sqnr_is_the_sqnr_of_the_concatenation(rng) -> None:
    refs = [rng.standard_normal((3, 8)), 5 * rng.standard_normal(11)]
    approx = [r + 0.1 * rng.standard_normal(r.shape) for r in refs]
    pooled = PooledSqnr()
    for r, a in zip(refs, approx, strict=True):
        pooled.add(r, a)
    flat = np.concatenate([r.ravel() for r in refs]), np.concatenate([a.ravel() for a in approx])
    assert pooled.db == pytest.approx(sqnr_db(*flat), abs=1e-12)
    # not the mean of the per-tensor SQNRs: the louder tensor weighs more
    mean_db = np.mean([sqnr_db(r, a) for r, a in zip(refs, approx, strict=True)])
    assert abs(pooled.db - mean_db) > 0.1
    # hand value: signal 1 + 4 = 5, noise 0.5² = 0.25 -> 10·log10(20)
    hand = PooledSqnr()
    hand.add(np.array([1.0]), np.array([1.0]))
    hand.add(np.array([2.0]), np.array([1.5]))
    assert hand.db == pytest.approx(10 * math.log10(20), abs=1e-12)


def test_sqnr_from_sums_edge_cases() -> None:
    assert sqnr_db_from_sums(1.0, 0.0) == math.inf
    assert sqnr_db_from_sums(0.0, 0.0) == math.inf
    assert math.isnan(sqnr_db_from_sums(0.0, 1.0))
    assert sqnr_db_from_sums(100.0, 1.0) == pytest.approx(20.0)
    empty = PooledSqnr()
    assert empty.db == math.inf


def test_embedding_metrics_hand_case() -> None:
    ref = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    same_direction = ref * np.array([[2.0], [0.5], [3.0]])  # scaling changes no cosine
    assert embedding_metrics(ref, same_direction) == pytest.approx((1.0, 1.0, 1.0))
    rotated = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])  # rows 2 and 3 swapped
    cos_mean, cos_min, rho = embedding_metrics(ref, rotated)
    half = math.sqrt(0.5)
    assert cos_min == pytest.approx(half)
    assert cos_mean == pytest.approx((1 + 2 * half) / 3)
    # pairwise cosines (12, 13, 23): ref (0, h, h), rotated (h, 0, h) -> ranks (1, 2.5, 2.5)
    # and (2.5, 1, 2.5): centred (-1, .5, .5), (.5, -1, .5): r = -0.75 / 1.5 = -0.5
    assert rho == pytest.approx(-0.5)


# ---------------------------------------------------------------------------- the variants


def test_variants_are_the_registry_4bit_designs_plus_study_options() -> None:
    """The plain rows are exactly the registry's 4-bit designs, labelled by the registry."""
    plain = [v for v in VARIANTS if v.design is not None and v.plain]
    want = [d for d in DESIGNS.values() if d.golden_format(CONFIG).element_bits == 4]
    assert sorted(v.design.name for v in plain) == sorted(d.name for d in want)
    assert {v.label for v in plain} == {d.row_label(CONFIG) for d in want}
    assert "mxint8" not in {v.design.name for v in plain}  # 8-bit: not a W4A4 row
    assert VARIANTS[0].design is None and VARIANTS[0].label == "fp16"
    options = [v for v in VARIANTS if not v.plain and not v.fidelity]
    assert [(v.decompose, v.seda) for v in options] == [(False, True), (True, False),
                                                         (True, True)]
    assert all(v.design == configured_design() for v in options)
    assert [v.label for v in VARIANTS if v.extra] == [options[0].label]
    assert len({v.label for v in VARIANTS}) == len(VARIANTS)
    # SemanticDialect under the default configuration is sd32 with lut selection
    sd = next(v for v in plain if v.design == configured_design())
    assert sd.label == "sd32 lut (SemanticDialect)" and sd.block == 32
    assert next(v for v in plain if v.design.name == "nvfp4").block == 16


def test_reconstruct_decomposition_equals_golden(rng) -> None:
    """The study's activation path (no GEMM) stores what golden's decomposed linear uses."""
    v = next(v for v in VARIANTS if v.decompose and not v.seda)
    x = (rng.standard_normal((20, 64)) * np.exp(rng.uniform(-3, 3, (20, 1)))).astype(np.float32)
    w = rng.standard_normal((64, 8)).astype(np.float32)
    salient = np.array([2, 5, 17])
    rec = reconstruct(x, v, salient=salient)
    ref = decomposed_linear(x, w, v.act_format, salient=salient)
    want = ref.qx.dequant.astype(np.float64)
    want[salient] += ref.qr.dequant
    np.testing.assert_array_equal(rec.deq, want)
    assert rec.bits == ref.bits_per_element
    plain = reconstruct(x, next(p for p in VARIANTS if p.design == v.design and p.plain))
    np.testing.assert_array_equal(plain.deq, ref.qx.dequant)
    assert plain.deq[salient].tolist() != rec.deq[salient].tolist()  # the residual counts


def test_fidelity_rows_reconstruct_equals_golden(rng) -> None:
    """A rotated row with ERR-sum decomposition stores what golden's decomposed linear uses
    with the same rotation and the ERR-selected rows; the rows have distinct labels, name
    their formats directly and keep the default rows untouched."""
    fid = [v for v in VARIANTS if v.fidelity]
    assert fid and all(v.fmt is not None and v.design is None and not v.plain for v in fid)
    v = next(v for v in fid if v.decompose and v.saliency == "err")
    assert v.rotate == "calibrated" and v.rho == FIDELITY_RHO
    x = (rng.standard_t(3, (40, 64)) * np.exp(rng.uniform(-2, 2, (40, 1)))).astype(np.float32)
    w = rng.standard_normal((64, 8)).astype(np.float32)
    act, weight = v.formats(True)
    assert isinstance(act, RotatedFormat) and act.role == "activation" and weight.role == "weight"
    rec = reconstruct(x, v, rotated=True)
    q = quantize(x, act, block=v.block)
    salient = top_rows(err_saliency_quantized(x, q), v.rho)
    assert rec.salient.tolist() == salient.tolist() and salient.size == 1  # ⌈0.02·40⌉
    ref = decomposed_linear(x, w, act, salient=salient)
    want = ref.qx.dequant.astype(np.float64)
    want[salient] += ref.qr.dequant
    np.testing.assert_array_equal(rec.deq, want)
    assert rec.bits == ref.bits_per_element
    unrotated = reconstruct(x, v, rotated=False)
    assert unrotated.deq.tolist() != rec.deq.tolist()


def test_rotation_choices() -> None:
    """none rotates nothing, hadamard every linear, calibrated a deterministic subset chosen
    on sentences the evaluation never measures."""
    names = set(load_minilm().linear_names)
    by = {v.rotate: v for v in VARIANTS if v.fmt is not None}
    assert rotated_linears(by["none"]) == frozenset()
    assert rotated_linears(by["hadamard"]) == names
    chosen = rotated_linears(by["calibrated"])
    assert chosen < names and chosen  # some linears, not all (MiniLM: 33 of 36 for sd32)
    assert CAL_SENTENCES[0] >= FULL_SENTENCES
    assert not video_rotated(by["none"]) and video_rotated(by["hadamard"])


# ------------------------------------------------------------------------- the command itself


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "semdialect", "eval", *args],
                          capture_output=True, text=True)


@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("eval") / "out"
    return out, _run("--quick", "--out", str(out))


def _table(out: Path) -> dict[tuple[str, str, str], tuple[float, float]]:
    with (out / "accuracy.csv").open(encoding="utf-8") as fh:
        return {
            (r["table"], r["row"], r["metric"]): (float(r["value"]),
                                                  float(r["act_bits_per_element"]))
            for r in csv.DictReader(fh)
        }


def test_quick_run_writes_every_format(quick) -> None:
    out, proc = quick
    assert proc.returncode == 0, proc.stderr
    assert "MiniLM W4A4" in proc.stderr and "video" in proc.stderr  # progress on stderr
    md = (out / "accuracy.md").read_text(encoding="utf-8")
    assert proc.stdout == md
    assert "sys.version" in md and sys.version.split()[0] in md
    assert "standard-library docstrings" in md and "parameter-free proxy" in md
    assert "issue" not in md.lower()
    assert "a full run uses the default 64" in md  # a quick run says what a full run does
    table = _table(out)
    with (out / "accuracy.csv").open(encoding="utf-8") as fh:
        minilm_rows = [r["row"] for r in csv.DictReader(fh) if r["table"] == "minilm_w4a4"]
    assert list(dict.fromkeys(minilm_rows)) == [v.label for v in VARIANTS]
    for v in VARIANTS:
        for tbl, metric in (("minilm_w4a4", "out_sqnr_db_mean_over_layers"),
                            ("minilm_w4a4", "spearman_pairwise_cosine"),
                            ("video", "sqnr_db"), ("video", "code_change_fraction")):
            assert (tbl, v.label, metric) in table, (tbl, v.label, metric)
        assert f"| {v.label}" in md
    for tbl in ("decomposition_minilm", "decomposition_video"):
        for rho in STUDY_RHOS:
            for how in ("attention", "err", "random", "oracle"):
                assert any(k[0] == tbl and k[1] == f"rho={rho} {how}" for k in table)
    with (out / "accuracy_layers.csv").open(encoding="utf-8") as fh:
        layers = list(csv.DictReader(fh))
    assert len(layers) == 36 * len(VARIANTS)


def test_quick_run_values_are_sane(quick) -> None:
    out, proc = quick
    assert proc.returncode == 0, proc.stderr
    t = _table(out)

    def val(tbl: str, row: str, metric: str) -> float:
        return t[(tbl, row, metric)][0]

    def bits(tbl: str, row: str, metric: str) -> float:
        return t[(tbl, row, metric)][1]

    sd32 = "sd32 lut (SemanticDialect)"
    out_db = "out_sqnr_db_mean_over_layers"
    assert val("minilm_w4a4", "fp16", out_db) > val("minilm_w4a4", sd32, out_db) + 30
    assert val("video", "fp16", "sqnr_db") > val("video", sd32, "sqnr_db") + 30
    assert val("minilm_w4a4", "fp16", "spearman_pairwise_cosine") > 0.999
    for v in VARIANTS:
        cos = val("minilm_w4a4", v.label, "embedding_cosine_mean")
        worst = val("minilm_w4a4", v.label, "embedding_cosine_worst")
        assert 0.5 < worst <= cos <= 1 + 1e-6
        assert -1 <= val("minilm_w4a4", v.label, "spearman_pairwise_cosine") <= 1 + 1e-12
        if v.design is not None:
            assert 5 < val("minilm_w4a4", v.label, out_db) < 40
            assert 10 < val("video", v.label, "sqnr_db") < 40
        assert 0 <= val("video", v.label, "code_change_fraction") <= 1
    assert bits("minilm_w4a4", "fp16", out_db) == 16
    assert bits("minilm_w4a4", sd32, out_db) == 4.3125
    assert bits("minilm_w4a4", "mxfp4", out_db) == 4.25
    assert bits("minilm_w4a4", "nvfp4", out_db) == 4.5
    assert bits("minilm_w4a4", "dfp4 two-stage (BlockDialect)", out_db) == 4.28125
    dec = next(v.label for v in VARIANTS if v.decompose and not v.seda)
    assert bits("minilm_w4a4", dec, out_db) > 4.3125  # residual rows are paid for
    # two code paths, one number: the W4A4 hook's FP32-input activation SQNR and the
    # decomposition study's (sd32 lut alone, and with attention-selected rows at rho 0.05)
    iso = "act_sqnr_db_fp32_input_mean_over_layers"
    act = "act_sqnr_db_mean_over_layers"
    assert val("minilm_w4a4", sd32, iso) == val("decomposition_minilm", "rho=0 none", act)
    assert val("minilm_w4a4", dec, iso) == val("decomposition_minilm", "rho=0.05 attention", act)
    # the residual helps the rows it is applied to, whichever selection picks them
    none = val("decomposition_video", "rho=0 none", "sqnr_db")
    assert val("decomposition_video", "rho=0.1 oracle", "sqnr_db") > none
    assert val("decomposition_video", "rho=0.1 attention", "sqnr_db") > none
    assert val("decomposition_video", "rho=0.1 err", "sqnr_db") > none
    # the fidelity targets: every target tensor has the NVFP4 reference and every row; every
    # SemanticDialect row stays within the bit budget (decomposition only where it fits)
    targets = {k[1] for k in t if k[0] == "fidelity_targets"}
    tensors = {row.split(": ", 1)[0] for row in targets}
    assert tensors == {"minilm.q_weight", "minilm.ffn_act", "video.tokens",
                       "minilm.linear_inputs (pooled)"}
    for tensor in tensors:
        assert f"{tensor}: nvfp4" in targets
        for row in targets:
            if row.startswith(f"{tensor}: learned"):
                assert bits("fidelity_targets", row, "sqnr_db") <= MAX_BITS
    md = (out / "accuracy.md").read_text(encoding="utf-8")
    assert "## 4. Format fidelity" in md and f"NVFP4 + {TARGET_MARGIN_DB} dB" in md


def test_eval_rejects_too_few_sentences(tmp_path) -> None:
    out = tmp_path / "out"
    proc = _run("--sentences", "2", "--out", str(out))
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "error:" in proc.stderr
    assert "sentences" in proc.stderr and "3" in proc.stderr
    assert not out.exists()
    with pytest.raises(ValueError, match="sentences"):  # the study checks it too
        run_eval(sentences=2)


def test_eval_child_rejects_a_file_as_out(tmp_path, capsys) -> None:
    """The child entry point checks --out before any work and writes nothing."""
    out = tmp_path / "taken"
    out.write_text("x", encoding="utf-8")
    assert accuracy.main(["--out", str(out), "--quick"]) == 2
    err = capsys.readouterr().err
    assert "error: out:" in err and "not a directory" in err
    assert out.read_text(encoding="utf-8") == "x"


def test_eval_help() -> None:
    proc = _run("--help")
    assert proc.returncode == 0
    for opt in ("--sentences", "--out", "--quick"):
        assert opt in proc.stdout
