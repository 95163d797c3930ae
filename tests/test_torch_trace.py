"""``semdialect.torch.trace_workload``: traced GEMM rows against shapes written by hand.

Every expected row below is computed in the test from the architecture's constants (batch,
sequence, width, heads, …), never from the tracer: names, M, K, N, count and static. The
conventions are those of ``data/workloads/README.md`` §1 (attention per head and per
sequence; Linear rows with the batch folded into M). The written CSV is read back with the
simulator's own reader (``sim.workloads.load_workload``) and run by ``semdialect sim``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="semdialect.torch needs the torch extra "
                                            "(pip install 'semdialect[torch]')")

from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from semdialect.sim.workloads import Gemm, load_workload  # noqa: E402
from semdialect.torch import trace_workload  # noqa: E402
from semdialect.torch.trace import Workload  # noqa: E402

pytestmark = pytest.mark.torch

# the small hand-built transformer
BATCH, SEQ, D, HEADS, FFN, OUT = 2, 10, 64, 4, 256, 10
HEAD_DIM = D // HEADS


class Attention(nn.Module):
    """q/k/v/o Linears; explicit ``q @ kᵀ`` + softmax + ``@ v``, or SDPA."""

    def __init__(self, sdpa: bool) -> None:
        super().__init__()
        self.sdpa = sdpa
        self.q, self.k, self.v, self.o = (nn.Linear(D, D) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = (lin(x).view(b, n, HEADS, HEAD_DIM).transpose(1, 2)
                   for lin in (self.q, self.k, self.v))
        if self.sdpa:
            y = F.scaled_dot_product_attention(q, k, v)
        else:
            scores = (q @ k.transpose(-1, -2)) / HEAD_DIM ** 0.5
            y = scores.softmax(dim=-1) @ v
        return self.o(y.transpose(1, 2).reshape(b, n, D))


class Block(nn.Module):
    def __init__(self, sdpa: bool) -> None:
        super().__init__()
        self.attn = Attention(sdpa)
        self.fc1, self.fc2 = nn.Linear(D, FFN), nn.Linear(FFN, D)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x)
        return x + self.fc2(F.gelu(self.fc1(x)))


class TinyTransformer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([Block(sdpa=False), Block(sdpa=True)])
        self.head = nn.Linear(D, OUT)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.head(x)


def tiny_expected() -> list[Gemm]:
    """The tiny transformer's GEMMs by hand: Linears on BATCH·SEQ rows, attention per head
    and per sequence (count = BATCH·HEADS)."""
    rows_ = BATCH * SEQ
    out = []
    for i in range(2):
        p = f"blocks.{i}"
        out += [Gemm(f"{p}.attn.{x}", rows_, D, D, 1, "W") for x in ("q", "k", "v")]
        out += [Gemm(f"{p}.attn.qk", SEQ, HEAD_DIM, SEQ, BATCH * HEADS, "none"),
                Gemm(f"{p}.attn.av", SEQ, SEQ, HEAD_DIM, BATCH * HEADS, "none"),
                Gemm(f"{p}.attn.o", rows_, D, D, 1, "W"),
                Gemm(f"{p}.fc1", rows_, D, FFN, 1, "W"),
                Gemm(f"{p}.fc2", rows_, FFN, D, 1, "W")]
    return out + [Gemm("head", rows_, D, OUT, 1, "W")]


@pytest.fixture(scope="module")
def tiny_workload() -> Workload:
    torch.manual_seed(0)
    return trace_workload(TinyTransformer(), torch.randn(BATCH, SEQ, D))


def test_tiny_transformer_rows_equal_hand_computed(tiny_workload: Workload) -> None:
    assert tiny_workload.gemms() == tiny_expected()
    assert tiny_workload.model == "TinyTransformer" and tiny_workload.name == "TinyTransformer"
    # MACs by hand: per block 4·(B·L·D·D) + 2·(B·H·L·L·hd) + 2·(B·L·D·FFN), plus the head
    per_block = 4 * BATCH * SEQ * D * D + 2 * BATCH * HEADS * SEQ * SEQ * HEAD_DIM \
        + 2 * BATCH * SEQ * D * FFN
    assert tiny_workload.macs == 2 * per_block + BATCH * SEQ * D * OUT
    text = str(tiny_workload)
    assert "blocks.0.attn.qk" in text and "blocks.1.attn.av" in text and "head" in text


def test_meta_device_traces_the_same_rows() -> None:
    with torch.device("meta"):  # shapes only: no weight is allocated
        model, x = TinyTransformer(), torch.randn(BATCH, SEQ, D)
    assert trace_workload(model, x).gemms() == tiny_expected()


def test_fake_quantized_model_traces_the_same_rows() -> None:
    """fake_quantize_ with matmuls=True runs its own torch-function mode: its quantize ops
    and inner matmuls must not show up as the model's GEMMs."""
    from semdialect.torch import fake_quantize_

    torch.manual_seed(3)
    model = TinyTransformer()
    fake_quantize_(model, fmt="mxfp4", matmuls=True, pad=True)
    assert trace_workload(model, torch.randn(BATCH, SEQ, D)).gemms() == tiny_expected()


@pytest.mark.parametrize("rotate", [None, "hadamard"])
def test_fake_quant_kernels_own_matmuls_are_not_traced(rotate: str | None) -> None:
    """sd32's LUT costs and the Hadamard are matrix products inside the quantize kernels; the
    tracer sees only the model's GEMMs (with and without the matmul interception)."""
    from semdialect.torch import fake_quantize_

    torch.manual_seed(4)
    model = TinyTransformer()
    fake_quantize_(model, fmt="sd32", rotate=rotate, pad=True)
    assert trace_workload(model, torch.randn(BATCH, SEQ, D)).gemms() == tiny_expected()


def test_trace_leaves_model_unchanged() -> None:
    torch.manual_seed(1)
    model = TinyTransformer().train()
    x = torch.randn(BATCH, SEQ, D)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trace_workload(model, x)
    assert model.training
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_csv_round_trips_through_the_simulator_reader(tiny_workload: Workload,
                                                      tmp_path: Path) -> None:
    path = tmp_path / "tiny.csv"
    tiny_workload.to_csv(path)
    assert path.read_text().splitlines()[0] == "layer,M,K,N,count,static"
    assert load_workload(path) == tiny_expected()
    # an existing file keeps its mode; a symlink is written through (the link stays)
    path.chmod(0o640)
    tiny_workload.to_csv(path)
    assert path.stat().st_mode & 0o777 == 0o640
    link = tmp_path / "link.csv"
    link.symlink_to(path)
    Workload((Gemm("only", 1, 2, 3, 4, "none"),), "M", "m").to_csv(link)
    assert link.is_symlink() and load_workload(path) == [Gemm("only", 1, 2, 3, 4, "none")]
    # a name the CSV reader could not give back: an error, and the old file stays
    with pytest.raises(ValueError, match=r"layer name 'a\\nb' has a line break"):
        Workload((Gemm("a\nb", 1, 2, 3),), "M", "m").to_csv(path)
    assert load_workload(path) == [Gemm("only", 1, 2, 3, 4, "none")]


def test_semdialect_sim_runs_the_traced_csv(tiny_workload: Workload, tmp_path: Path) -> None:
    csv_path = tmp_path / "tiny.csv"
    tiny_workload.to_csv(csv_path)
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "semdialect", "sim", "--workload", str(csv_path), "--config",
         "small", "--skip-rtl", "--skip-area", "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    written = "\n".join(p.read_text(errors="replace") for p in out.iterdir()
                        if p.suffix in (".csv", ".md"))
    for layer in ("blocks.0.attn.qk", "blocks.1.attn.av", "blocks.1.fc2", "head"):
        assert layer in written, layer


def test_minilm_traced_workload_equals_hand_derived(tmp_path: Path) -> None:
    from semdialect.torch.minilm import load_torch_minilm

    model = load_torch_minilm()
    ids, mask = model.numpy_model.tokenize(["A man is playing a guitar on the stage."])
    n = int(mask.sum())  # one sentence, batch 1: N tokens with [CLS] and [SEP]
    assert ids.shape == (1, n) and n > 2
    layers, hidden, heads, head_dim, ffn = 6, 384, 12, 32, 1536  # all-MiniLM-L6-v2
    hand = []
    for i in range(layers):
        p = f"encoder.layer.{i}"
        hand += [Gemm(f"{p}.attention.self.{x}", n, hidden, hidden, 1, "W")
                 for x in ("query", "key", "value")]
        hand += [Gemm(f"{p}.attention.self.qk", n, head_dim, n, heads, "none"),
                 Gemm(f"{p}.attention.self.av", n, n, head_dim, heads, "none"),
                 Gemm(f"{p}.attention.output.dense", n, hidden, hidden, 1, "W"),
                 Gemm(f"{p}.intermediate.dense", n, hidden, ffn, 1, "W"),
                 Gemm(f"{p}.output.dense", n, ffn, hidden, 1, "W")]
    hand_csv = tmp_path / "minilm_hand.csv"
    hand_csv.write_text("layer,M,K,N,count,static\n" + "".join(
        f"{g.layer},{g.m},{g.k},{g.n},{g.count},{g.static}\n" for g in hand))
    traced = trace_workload(model, torch.from_numpy(ids), torch.from_numpy(mask),
                            name="minilm")
    assert traced.gemms() == load_workload(hand_csv)
    traced_csv = tmp_path / "minilm_traced.csv"
    traced.to_csv(traced_csv)
    assert traced_csv.read_text() == hand_csv.read_text()


# --- the other GEMM kinds and the naming rules, each against shapes by hand ---------------

class Zoo(nn.Module):
    """Static operands in several spellings, a grouped-query SDPA, an einsum attention, a
    reused module, a patch convolution and nn.MultiheadAttention."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(D, D))
        self.shared = nn.Linear(D, D)
        self.patch = nn.Conv2d(3, D, kernel_size=4, stride=4)
        self.mha = nn.MultiheadAttention(D, HEADS, batch_first=True)

    def forward(self, x: torch.Tensor, img: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        y = x @ self.w.T  # static W (a view of a parameter)
        y = (self.w @ y.transpose(1, 2)).transpose(1, 2)  # W·X: written Xᵀ·Wᵀ
        y = self.shared(self.shared(y))  # one module called twice: counts add
        q = y.view(b, n, HEADS, HEAD_DIM).transpose(1, 2)
        kv_heads = HEADS // 2  # grouped-query attention: 2 query heads per K/V head
        kv = y[..., : 2 * kv_heads * HEAD_DIM].reshape(b, n, kv_heads, 2, HEAD_DIM)
        kv = kv.permute(3, 0, 2, 1, 4)
        a = F.scaled_dot_product_attention(q, kv[0], kv[1], enable_gqa=True)
        s = torch.einsum("bhqd,bhkd->bhqk", q, q).softmax(-1)
        a = a + torch.einsum("bhqk,bhkd->bhqd", s, q)
        y = a.transpose(1, 2).reshape(b, n, D)
        tokens = self.patch(img).flatten(2).transpose(1, 2)
        return self.mha(y, tokens, tokens)[0]


def test_zoo_rows_equal_hand_computed() -> None:
    torch.manual_seed(2)
    img = torch.randn(BATCH, 3, 16, 32)  # 4x4 patches: 4 x 8 = 32 tokens an image
    got = trace_workload(Zoo(), torch.randn(BATCH, SEQ, D), img).gemms()
    rows_, patches = BATCH * SEQ, (16 // 4) * (32 // 4)
    expected = [
        Gemm("matmul0", rows_, D, D, 1, "W"),
        Gemm("matmul1", rows_, D, D, 1, "W"),
        Gemm("shared", rows_, D, D, 2, "W"),
        Gemm("qk", SEQ, HEAD_DIM, SEQ, BATCH * HEADS, "none"),
        Gemm("av", SEQ, SEQ, HEAD_DIM, BATCH * HEADS, "none"),
        Gemm("qk1", SEQ, HEAD_DIM, SEQ, BATCH * HEADS, "none"),
        Gemm("av1", SEQ, SEQ, HEAD_DIM, BATCH * HEADS, "none"),
        Gemm("patch", BATCH * patches, 3 * 4 * 4, D, 1, "W"),
        Gemm("mha.q_proj", rows_, D, D, 1, "W"),
        Gemm("mha.kv_proj", BATCH * patches, D, 2 * D, 1, "W"),
        Gemm("mha.qk", SEQ, HEAD_DIM, patches, BATCH * HEADS, "none"),
        Gemm("mha.av", SEQ, patches, HEAD_DIM, BATCH * HEADS, "none"),
        Gemm("mha.out_proj", rows_, D, D, 1, "W"),
    ]
    assert got == expected


def test_depthwise_conv_and_batched_weights() -> None:
    class Depthwise(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.dw = nn.Conv1d(8, 16, kernel_size=3, groups=8)
            self.per_head = nn.Parameter(torch.randn(HEADS, HEAD_DIM, 5))

        def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
            self.dw(x)
            return torch.bmm(h, self.per_head)  # W batched by head: count, not folded

    got = trace_workload(Depthwise(), torch.randn(BATCH, 8, 12),
                         torch.randn(HEADS, SEQ, HEAD_DIM)).gemms()
    assert got == [Gemm("dw", BATCH * (12 - 3 + 1), 1 * 3, 16 // 8, 8, "W"),
                   Gemm("matmul0", SEQ, HEAD_DIM, 5, HEADS, "W")]


def test_einsum_forms() -> None:
    class Einsums(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.randn(D, 24))

        def forward(self, x: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> None:
            torch.einsum("...d,de->...e", x, self.w)  # ellipsis batch, static W: folded
            torch.einsum("bij,bjk", a, b)  # implicit output "ik": b is summed, so K = b·j
            torch.einsum("bij,bkj->bik", [a, a])  # operand list; batch b per GEMM
            torch.einsum("bij,bij->bij", a, a)  # element-wise: no GEMM

    a, b = torch.randn(3, 5, 7), torch.randn(3, 7, 2)
    got = trace_workload(Einsums(), torch.randn(BATCH, SEQ, D), a, b).gemms()
    assert got == [Gemm("matmul0", BATCH * SEQ, D, 24, 1, "W"),
                   Gemm("matmul1", 5, 3 * 7, 2, 1, "none"),
                   Gemm("matmul2", 5, 7, 5, 3, "none")]


def test_bare_linear_is_named_after_its_class() -> None:
    got = trace_workload(nn.Linear(6, 7), torch.randn(3, 4, 6), name="one").gemms()
    assert got == [Gemm("Linear", 12, 6, 7, 1, "W")]


def test_bad_input() -> None:
    with pytest.raises(ValueError, match=r"^model: expected a torch.nn.Module, got function"):
        trace_workload(lambda x: x, torch.randn(2))
    with pytest.raises(ValueError, match=r"^model: Sequential's forward made no linear"):
        trace_workload(nn.Sequential(nn.ReLU(), nn.LayerNorm(4)), torch.randn(2, 4))
    up = nn.Sequential(nn.Linear(4, 4), nn.Unflatten(1, (4, 1)), nn.ConvTranspose1d(4, 2, 2))
    with pytest.raises(ValueError, match=r"module '2' calls conv_transpose1d"):
        trace_workload(up, torch.randn(2, 4))
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in up.modules())
    with pytest.raises(ValueError, match=r"^name: expected a non-empty string"):
        trace_workload(nn.Linear(2, 2), torch.randn(1, 2), name=" ")
