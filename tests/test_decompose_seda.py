"""Activation decomposition (SPEC §6) and SeDA (SPEC §7) on hand-built attention maps."""

from __future__ import annotations

import numpy as np
import pytest

from semdialect.golden import gemm, quantize, sd32
from semdialect.golden.decompose import (
    DecomposedParts,
    decomposed_linear,
    n_salient,
    residual,
    saliency,
    salient_tokens,
)
from semdialect.golden.quantize import dialect_costs
from semdialect.golden.seda import SedaGroups, seda_groups, seda_quantize, window


def uniform_map(n: int, heads: int = 2) -> np.ndarray:
    return np.full((heads, n, n), 1.0 / n)


def test_n_salient_is_exact_decimal() -> None:
    assert n_salient(0.07, 100) == 7  # 0.07 * 100 in binary floats is 7.000000000000001
    assert n_salient("0.05", 100) == 5
    assert n_salient(0.05, 101) == 6
    assert n_salient(0, 50) == 0
    with pytest.raises(ValueError, match="rho"):
        n_salient(1.5, 10)


def test_salient_set_of_a_hand_built_map() -> None:
    a = uniform_map(8) * 0.5
    a[0, :, 5] += 0.25  # token 5 receives the most
    a[1, :, 2] += 0.125  # then token 2
    a[1, :, 6] += 0.125  # tie with 2: the lower index wins
    assert saliency(a).argmax() == 5
    assert salient_tokens(a, "0.125").tolist() == [5]
    assert salient_tokens(a, "0.25").tolist() == [2, 5]
    assert salient_tokens(a, "0.375").tolist() == [2, 5, 6]


def test_residual_of_representable_row_is_zero() -> None:
    x = np.zeros((1, 32), np.float16)
    x[0, :8] = [0, 0.5, 1, 1.5, 2, 3, 4, 6]  # dfp4 dialect 7 exactly (E2M1 grid)
    q = quantize(x, "dfp4")
    assert np.array_equal(q.dequant, x.astype(np.float32))
    r = residual(x, q)
    assert not r.any()


def test_residual_is_exact_difference() -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 64)).astype(np.float16)
    q = quantize(x, "sd32")
    r = residual(x, q)
    assert np.array_equal(r.astype(np.float32), x.astype(np.float32) - q.dequant)


def test_decomposed_linear_rows() -> None:
    rng = np.random.default_rng(4)
    x = rng.standard_t(3, (16, 64)).astype(np.float16)
    w = rng.standard_normal((64, 5)).astype(np.float16)
    a = uniform_map(16)
    a[:, :, [3, 11]] += 1.0
    res = decomposed_linear(x, w, "sd32", attn=a, rho="0.1")
    assert res.salient.tolist() == [3, 11]
    plain = gemm(x, w, "sd32")
    others = np.setdiff1d(np.arange(16), [3, 11])
    assert np.array_equal(res.y[others], plain[others])
    resid = gemm(residual(x[[3, 11]], quantize(x[[3, 11]], "sd32")), w, "sd32")
    want = (plain[[3, 11]] + resid).astype(np.float32)
    assert np.array_equal(res.y[[3, 11]], want)
    # decomposition helps the salient rows
    exact = x.astype(np.float64) @ w.astype(np.float64)
    err_dec = np.abs(res.y[[3, 11]] - exact[[3, 11]]).sum()
    assert err_dec < np.abs(plain[[3, 11]] - exact[[3, 11]]).sum()
    assert res.bits_per_element == pytest.approx(4.3125 * (1 + 2 / 16))


def test_windows() -> None:
    assert window(0, None, 30).tolist() == list(range(9))
    assert window(20, None, 30).tolist() == list(range(12, 29))
    layout = (2, 3, 6)
    keys = window(0, layout, 36)  # (0,0,0): t 0..1, h 0..2, w 0..2
    assert len(keys) == 2 * 3 * 3
    assert np.ravel_multi_index((1, 2, 2), layout) in keys
    assert np.ravel_multi_index((0, 0, 3), layout) not in keys  # |Δw| = 3
    last = window(35, layout, 36)  # (1,2,5): no wrap to w = 0
    assert all(np.unravel_index(k, layout)[2] >= 3 for k in last)


def test_groups_of_a_hand_built_map() -> None:
    n = 12
    a = np.zeros((2, n, n))
    a[:, np.arange(n), np.arange(n)] = 0.25  # self attention
    a[0, 4, 4] = 1.0  # token 4 most salient, attends to 5 and 6 strongly
    a[0, 4, 5] = 0.5
    a[1, 4, 6] = 0.5  # head sums 0.5 >= 0.5 * (1.25)? no: 0.5 < 0.625
    a[0, 4, 6] = 0.25  # head sum 0.75 >= 0.625: joins
    a[1, 4, 5] = 0.125  # head sum 0.625 == 0.625: joins (exact tie)
    a[0, 4, 7] = 0.5  # head sum 0.5 < 0.625: stays out
    g = seda_groups(a, tau="0.5")
    assert g.anchors[0] == 4
    assert sorted(np.flatnonzero(g.group_of == 0).tolist()) == [4, 5, 6]
    assert len(set(g.group_of.tolist())) == g.n_groups
    assert (g.group_of >= 0).all()


def test_seda_with_singleton_groups_equals_lut() -> None:
    rng = np.random.default_rng(5)
    x = rng.standard_t(3, (20, 96)).astype(np.float16)
    res = seda_quantize(x, SedaGroups.singletons(20), "sd32")
    plain = quantize(x, "sd32")
    costs = dialect_costs(x, "sd32")
    chosen = np.take_along_axis(costs, res.q.dialect[..., None].astype(np.intp), -1)[..., 0]
    best = costs.min(-1)
    assert np.array_equal(chosen, best)  # same (minimal) LUT cost in every block
    # Same dialect wherever the minimum is unique; on an exact cost tie across variants,
    # SPEC §7's variant rule (lowest v) decides instead of the lowest dialect id.
    unique = (costs == best[..., None]).sum(-1) == 1
    assert unique.any() and not unique.all()  # both cases are exercised
    assert np.array_equal(res.q.dialect[unique], plain.dialect[unique])
    rows = unique.all(axis=1)
    assert np.array_equal(res.q.codes[rows], plain.codes[rows])


def test_seda_never_leaves_the_sub_formatbook() -> None:
    rng = np.random.default_rng(6)
    n = 2 * 4 * 4
    x = rng.standard_t(3, (n, 64)).astype(np.float16)
    attn = rng.random((3, n, n))
    attn /= attn.sum(-1, keepdims=True)
    g = seda_groups(attn, layout=(2, 4, 4))
    res = seda_quantize(x, g, "sd32")
    variants = res.variant[g.group_of]  # (N, nb)
    assert np.array_equal(res.q.dialect % 4, variants)
    # the variant minimises the group's summed best-in-sub-formatbook cost
    book = sd32()
    costs = dialect_costs(x, "sd32")
    for gid in range(g.n_groups):
        members = g.group_of == gid
        for b in range(2):
            totals = [costs[members, b][:, book.variant_ids(v)].min(-1).sum() for v in range(4)]
            assert res.variant[gid, b] == int(np.argmin(totals))
    assert res.bits_per_element < 4 + 10 / 32 + 1e-9 or g.n_groups > n / 2


def test_seda_rejects_two_stage_and_bad_shapes() -> None:
    x = np.ones((4, 32), np.float16)
    g = SedaGroups.singletons(4)
    with pytest.raises(ValueError, match="lut"):
        from semdialect.golden.formats import DialectFormat

        seda_quantize(x, g, DialectFormat("dfp4", "two-stage"))
    with pytest.raises(ValueError, match="expected"):
        seda_quantize(np.ones((5, 32)), g, "sd32")
    with pytest.raises(ValueError, match="layout"):
        seda_groups(uniform_map(6), layout=(1, 2, 2))


def test_decomposition_and_seda_are_public_api() -> None:
    import semdialect.golden as golden
    from semdialect.golden import decompose, seda

    for mod, names in ((decompose, ("decomposed_linear", "DecomposedLinear", "DecomposedParts",
                                    "salient_tokens", "saliency", "residual")),
                       (seda, ("seda_groups", "seda_quantize", "SedaGroups", "SedaResult"))):
        for name in names:
            assert getattr(golden, name) is getattr(mod, name) and name in golden.__all__
    assert "FlushWarning" in golden.__all__


@pytest.mark.parametrize("out", ["fp32", "fp16"])
@pytest.mark.parametrize("rho", ["0", "0.1", "0.5"])
def test_decomposed_parts_sum_to_the_output(out: str, rho: str) -> None:
    """main and residual are the two SPEC §6 accumulations; their sum is y bit for bit."""
    rng = np.random.default_rng(7)
    x = rng.standard_t(3, (16, 64)).astype(np.float16)
    w = rng.standard_normal((64, 5)).astype(np.float16)
    a = uniform_map(16)
    a[:, :, [3, 11]] += 1.0
    res = decomposed_linear(x, w, "sd32", attn=a, rho=rho, out=out)
    parts = res.parts
    assert isinstance(parts, DecomposedParts)
    assert parts.salient.tolist() == res.salient.tolist()
    n_s = res.salient.size
    assert parts.main.dtype == np.float32 and parts.main.shape == (16, 5)
    assert parts.residual.dtype == np.float32 and parts.residual.shape == (n_s, 5)
    # main: the plain GEMM of X; residual: the GEMM of the salient rows' residual
    assert np.array_equal(parts.main.view(np.uint32), gemm(x, w, "sd32").view(np.uint32))
    if n_s:
        rows = x[res.salient]
        r = (rows.astype(np.float32) - quantize(rows, "sd32").dequant).astype(np.float16)
        assert np.array_equal(parts.residual, gemm(r, w, "sd32"))
    # their sum, rounded once as requested, is y bit for bit
    y = parts.main.copy()
    y[parts.salient] = y[parts.salient] + parts.residual
    want = y if out == "fp32" else y.astype(np.float16)
    assert res.y.dtype == want.dtype
    assert res.y.tobytes() == want.tobytes()
    assert parts.combine(out).tobytes() == res.y.tobytes()
