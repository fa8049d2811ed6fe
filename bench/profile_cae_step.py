"""Where a CPU bf16 CAE training step spends its time, per operator and input shape.

    python bench/profile_cae_step.py [--side 16] [--precision bf16]

One thread, batch 256, the suite's CAE and step (forward, MSE, backward, fused Adam), under
torch.profiler; writes bench/results/speed/profile_cae<side>_<precision>.md with machine,
versions and commit. The machine should be otherwise idle.
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from dcbench.core import runinfo
from dcbench.core.fileio import atomic_write_text
from dcbench.methods.backbones import ConvAutoencoder
from dcbench.methods.training import autocast

OUT = Path(__file__).resolve().parent / "results" / "speed"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--side", type=int, default=16)
    p.add_argument("--precision", default="bf16", choices=("fp32", "bf16"))
    args = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = ConvAutoencoder((1, args.side, args.side))
    opt = torch.optim.Adam(net.parameters(), fused=True)
    x = torch.rand(256, 1, args.side, args.side)

    def step() -> None:
        with autocast(x.device, args.precision):
            loss = (net(x)[1].float() - x).square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(5):  # warm-up: oneDNN builds its kernels on first use
        step()
    start = time.perf_counter()
    for _ in range(20):
        step()
    step_ms = (time.perf_counter() - start) / 20 * 1e3
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(10):
            step()
    table = prof.key_averages(group_by_input_shape=True).table(
        sort_by="self_cpu_time_total", row_limit=20, max_name_column_width=32,
        max_shapes_column_width=90,
    )  # fmt: skip
    text = "\n".join([
        f"# CAE {args.side}x{args.side} {args.precision} training step, one thread, batch 256 "
        "(`python bench/profile_cae_step.py`)",
        "",
        f"{datetime.now(timezone.utc).isoformat(timespec='seconds')}, commit "
        f"{runinfo.git_commit()}, {runinfo.machine()}, torch {torch.__version__}",
        "",
        f"Step: {step_ms:.1f} ms (mean of 20). Profile of 10 steps (self CPU time, ops "
        "grouped by input shapes; convolution_backward's first shape is the output gradient):",
        "",
        "```",
        table,
        "```",
        "",
    ])  # fmt: skip
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"profile_cae{args.side}_{args.precision}.md"
    atomic_write_text(path, text)
    print(text)


if __name__ == "__main__":
    main()
