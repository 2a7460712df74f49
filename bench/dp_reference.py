"""Our 1-D conditional UNet vs Chi et al.'s reference ``ConditionalUnet1D``, side by side.

    python -m bench.dp_reference [--quick] [--ref-path /tmp/dp_ref]

The reference is *not* a dependency and is never vendored: fetch it yourself, e.g.::

    git clone https://github.com/real-stanford/diffusion_policy /tmp/dp_ref

(``--ref-path``, default ``$DP_REFERENCE_PATH`` or ``/tmp/dp_ref``, is the directory that contains
the ``diffusion_policy`` package; only ``diffusion_policy/model/diffusion/{conditional_unet1d,
conv1d_components,positional_embedding}.py`` are imported, and they need ``einops``.)

Both networks are built with the same configuration -- the default ``conf/policy/diffusion_unet.yaml``
on TwoPaths (action dim 2, global condition = 2 obs steps x 8 state dims, down_dims (64, 128, 256),
kernel 5, 8 groups, step embedding 64, FiLM with scale) -- and measured in one process, alternating
ours / reference round by round (median over rounds):

- parameter counts;
- numerical agreement: our weights copied into the reference through a one-to-one state_dict key
  mapping, max |difference| of the outputs (and of the gradients after one backward);
- one training step (forward + MSE + backward + AdamW) at batch 256, horizon 16;
- inference at batch 1 under ``torch.no_grad``: 10 denoiser passes (the network's share of a
  DDIM-10 action chunk) and 100 passes (DDPM-100).

Goal: ours no slower (time <= 1.05x the reference's). Writes ``bench/results/dp_reference.json``.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from bench.common import load_average, row, write_result  # noqa: E402

REF_MODULE = "diffusion_policy.model.diffusion.conditional_unet1d"
FETCH_HINT = (
    "git clone https://github.com/real-stanford/diffusion_policy {path}   "
    "(or copy diffusion_policy/model/diffusion/{{conditional_unet1d,conv1d_components,positional_embedding}}.py "
    "there), `pip install einops`, then pass --ref-path or set DP_REFERENCE_PATH"
)

ACTION_DIM = 2      # TwoPaths
OBS_DIM = 8         # TwoPaths state
N_OBS_STEPS = 2
HORIZON = 16
CONFIG = dict(
    input_dim=ACTION_DIM,
    global_cond_dim=N_OBS_STEPS * OBS_DIM,
    diffusion_step_embed_dim=64,
    down_dims=(64, 128, 256),
    kernel_size=5,
    n_groups=8,
    cond_predict_scale=True,
)
GOAL_RATIO = 1.05


def import_reference(ref_path: str):
    """``ConditionalUnet1D`` from the reference checkout at ``ref_path`` (exits with a hint if missing)."""
    path = str(Path(ref_path).expanduser().resolve())
    if path not in sys.path:
        sys.path.insert(0, path)
    try:
        import importlib

        mod = importlib.import_module(REF_MODULE)
    except ImportError as e:
        print(f"bench.dp_reference: cannot import the reference UNet ({REF_MODULE}) from {path}: {e}\n"
              f"Fetch it first:\n  {FETCH_HINT.format(path=path)}", file=sys.stderr)
        raise SystemExit(2)
    return mod.ConditionalUnet1D, mod.__file__


def reference_commit(ref_path: str) -> str | None:
    """The reference's git commit, when ``ref_path`` is a clone (or holds a ``COMMIT`` file)."""
    p = Path(ref_path).expanduser()
    if (p / "COMMIT").is_file():
        return (p / "COMMIT").read_text().strip() or None
    head = p / ".git" / "HEAD"
    try:
        ref = head.read_text().strip()
        if ref.startswith("ref: "):
            return (p / ".git" / ref[5:]).read_text().strip()
        return ref
    except OSError:
        return None


# --------------------------------------------------------------------------- weights mapping
_RULES = [
    (r"^step_encoder\.", "diffusion_step_encoder."),
    (r"\.blocks\.(\d+)\.(\d+)\.", r".blocks.\1.block.\2."),            # Conv1dBlock is a Sequential here
    (r"^(down_modules|up_modules)\.(\d+)\.2\.", r"\1.\2.2.conv."),      # Downsample1d / Upsample1d wrap a conv
    (r"^final_block\.(\d+)\.", r"final_conv.0.block.\1."),
    (r"^final_conv\.(weight|bias)$", r"final_conv.1.\1"),
]


def ref_key(key: str) -> str:
    for pat, rep in _RULES:
        key = re.sub(pat, rep, key)
    return key


def key_mapping(ours: torch.nn.Module, ref: torch.nn.Module) -> tuple[dict[str, str] | None, str]:
    """Our state_dict key -> the reference's, or ``None`` and why when they do not map one-to-one."""
    a, b = ours.state_dict(), ref.state_dict()
    mapping = {k: ref_key(k) for k in a}
    missing = sorted(set(mapping.values()) ^ set(b))
    if missing or len(set(mapping.values())) != len(mapping):
        return None, f"state_dict keys do not map one-to-one (unmatched: {missing[:6]}...)"
    bad = [k for k, v in mapping.items() if a[k].shape != b[v].shape]
    if bad:
        return None, f"shapes differ for {bad[:6]}"
    return mapping, f"{len(mapping)} tensors map one-to-one"


def copy_weights(ours: torch.nn.Module, ref: torch.nn.Module, mapping: dict[str, str]) -> None:
    sd = ours.state_dict()
    ref.load_state_dict({mapping[k]: v.clone() for k, v in sd.items()}, strict=True)


def check_outputs(ours: torch.nn.Module, ref: torch.nn.Module, mapping: dict[str, str]) -> tuple[float, float]:
    """Max |ours - ref| of the outputs (batch 64) and of the parameter gradients after one MSE backward."""
    copy_weights(ours, ref, mapping)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, HORIZON, ACTION_DIM, generator=g)
    t = torch.randint(0, 100, (64,), generator=g)
    c = torch.randn(64, CONFIG["global_cond_dim"], generator=g)
    target = torch.randn(64, HORIZON, ACTION_DIM, generator=g)
    with torch.no_grad():
        out_diff = (ours(x, t, c) - ref(x, t, global_cond=c)).abs().max().item()
    for m in (ours, ref):
        m.zero_grad(set_to_none=True)
    F.mse_loss(ours(x, t, c), target).backward()
    F.mse_loss(ref(x, t, global_cond=c), target).backward()
    rp = dict(ref.named_parameters())
    grad_diff = max((p.grad - rp[mapping[k]].grad).abs().max().item() for k, p in ours.named_parameters())
    for m in (ours, ref):
        m.zero_grad(set_to_none=True)
    return out_diff, grad_diff


# --------------------------------------------------------------------------- timing
def _train_step_fn(net: torch.nn.Module, is_ref: bool, batch: int):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(batch, HORIZON, ACTION_DIM, generator=g)
    t = torch.randint(0, 100, (batch,), generator=g)
    c = torch.randn(batch, CONFIG["global_cond_dim"], generator=g)
    target = torch.randn(batch, HORIZON, ACTION_DIM, generator=g)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4, weight_decay=1e-6, betas=(0.95, 0.999))

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        pred = net(x, t, global_cond=c) if is_ref else net(x, t, c)
        F.mse_loss(pred, target).backward()
        opt.step()

    return step


def _infer_fn(net: torch.nn.Module, is_ref: bool, passes: int):
    g = torch.Generator().manual_seed(3)
    x0 = torch.randn(1, HORIZON, ACTION_DIM, generator=g)
    c = torch.randn(1, CONFIG["global_cond_dim"], generator=g)
    ts = [torch.full((1,), int(v), dtype=torch.long) for v in torch.linspace(99, 0, passes).round()]

    @torch.no_grad()
    def run() -> None:
        x = x0
        for t in ts:
            eps = net(x, t, global_cond=c) if is_ref else net(x, t, c)
            x = x - 0.05 * eps  # keep the passes chained, like a sampler (cost negligible)

    return run


def _time_ms(fn, n: int) -> float:
    """Median wall time of ``n`` calls, in ms."""
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def alternate(fns: dict[str, object], rounds: int, per_round: int, warmup: int) -> dict[str, float]:
    """Median over ``rounds`` of each fn's per-round median, alternating which goes first."""
    names = list(fns)
    for name in names:
        for _ in range(warmup):
            fns[name]()
    res: dict[str, list[float]] = {k: [] for k in names}
    for r in range(rounds):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            res[name].append(_time_ms(fns[name], per_round))
    return {k: statistics.median(v) for k, v in res.items()}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="few rounds (a sanity check, not a result)")
    ap.add_argument("--ref-path", default=os.environ.get("DP_REFERENCE_PATH", "/tmp/dp_ref"),
                    help="directory holding the reference's diffusion_policy package (default: $DP_REFERENCE_PATH or /tmp/dp_ref)")
    args = ap.parse_args(argv)
    RefUnet, ref_file = import_reference(args.ref_path)
    from robotrl.nn.unet1d import ConditionalUnet1D

    torch.set_num_threads(1)
    torch.manual_seed(0)
    ours = ConditionalUnet1D(**CONFIG)
    ref = RefUnet(**{**CONFIG, "down_dims": list(CONFIG["down_dims"])})
    n_ours = sum(p.numel() for p in ours.parameters())
    n_ref = sum(p.numel() for p in ref.parameters())
    rows = [row("ConditionalUnet1D, same config", "parameters", n_ours, peer="reference ConditionalUnet1D",
                peer_value=n_ref, goal="equal", met=n_ours == n_ref)]
    print(rows[-1])

    notes = []
    mapping, why = key_mapping(ours, ref)
    if mapping is None:
        notes.append(f"outputs not compared: {why}")
    else:
        out_diff, grad_diff = check_outputs(ours, ref, mapping)
        rows.append(row("same weights copied into the reference, batch 64", "max abs difference of outputs, ours vs reference",
                        out_diff, goal="<= 1e-5 (same maths)", met=out_diff <= 1e-5, max_abs_grad_diff=grad_diff))
        notes.append(f"weights: {why}; after one MSE backward the parameter gradients differ by at most {grad_diff:.2g}")
        print(rows[-1])

    rounds = 3 if args.quick else 9
    cases = [
        ("one training step (fwd + MSE + bwd + AdamW), batch 256, H=16", "ms per step (lower is better)",
         lambda net, is_ref: _train_step_fn(net, is_ref, 256), 2 if args.quick else 4, 2),
        ("inference, batch 1: 10 denoiser passes (DDIM-10, network only)", "ms per chunk (lower is better)",
         lambda net, is_ref: _infer_fn(net, is_ref, 10), 5 if args.quick else 15, 3),
        ("inference, batch 1: 100 denoiser passes (DDPM-100, network only)", "ms per chunk (lower is better)",
         lambda net, is_ref: _infer_fn(net, is_ref, 100), 1 if args.quick else 3, 1),
    ]
    for case, metric, make, per_round, warmup in cases:
        train = "training" in case
        ours.train(train)
        ref.train(train)
        med = alternate({"ours": make(ours, False), "ref": make(ref, True)}, rounds, per_round, warmup)
        rows.append(row(case, metric, med["ours"], peer="reference ConditionalUnet1D", peer_value=med["ref"],
                        goal=f"ours no slower (<= {GOAL_RATIO}x)", met=med["ours"] <= GOAL_RATIO * med["ref"],
                        rounds=rounds, calls_per_round=per_round))
        print(rows[-1])

    commit = reference_commit(args.ref_path)
    cfg = ", ".join(f"{k}={v}" for k, v in CONFIG.items())
    notes += [
        f"reference: real-stanford/diffusion_policy {REF_MODULE}" + (f" at {commit[:12]}" if commit else "")
        + " (not vendored; imported from --ref-path)",
        f"config (both): {cfg}, horizon {HORIZON}; torch {torch.__version__}, 1 thread",
        f"timing: ours and reference alternate round by round ({rounds} rounds), median of per-round medians",
        f"load average at the end: {load_average()} (2 cores shared)",
    ]
    cmd = "python -m bench.dp_reference" + " ".join([""] + (argv if argv is not None else sys.argv[1:]))
    path = write_result("dp_reference", cmd, rows, args.quick, notes=notes)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
