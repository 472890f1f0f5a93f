"""Time one training step of the default byte LM or UNet, and count its FLOPs (torch's FlopCounterMode).

Run in a fresh process per measurement so the thread count is the one given:
    python benchmarks/train_step.py lm|unet --threads N [--steps S]
prints one JSON line: seconds per step (median of S timed steps after warm-up) and FLOPs per step.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time


def lm_step():
    """The default lm_compression model and batch: GPT-2 2x64 over bytes, context 128, batch 32."""
    import torch

    from copystudy.models.causal_lm import CausalLM

    lm = CausalLM.from_config(n_layer=2, n_head=2, n_embd=64, context=128)
    model = lm.model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batch = torch.randint(0, 256, (32, 129))

    def step():
        logits = model(input_ids=batch[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 256), batch[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def unet_step():
    """The default royalty_shares UNet (16x16, channels 16/32, class labels) and its fine-tune batch of 32."""
    import torch

    from copystudy.models.diffusion import DiffusionModel

    dm = DiffusionModel.from_config(image_size=16, block_channels=(16, 32), layers_per_block=1, attention=False,
                                    num_classes=12, num_train_timesteps=200)
    unet = dm.unet.train()
    opt = torch.optim.AdamW(unet.parameters(), lr=1e-3)
    x = torch.randn(32, 1, 16, 16)
    t = torch.randint(0, 200, (32,))
    y = torch.randint(0, 12, (32,))

    def step():
        loss = torch.nn.functional.mse_loss(unet(x, t, class_labels=y).sample, x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def measure(kind: str, steps: int) -> dict:
    from torch.utils.flop_counter import FlopCounterMode
    import torch

    step = {"lm": lm_step, "unet": unet_step}[kind]()
    for _ in range(3):
        step()
    with FlopCounterMode(display=False) as counter:
        step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return {"kind": kind, "threads": torch.get_num_threads(), "seconds_per_step": statistics.median(times),
            "flops_per_step": float(counter.get_total_flops())}


def matmul_peak(threads: int, n: int = 2048, repeats: int = 10) -> float:
    """Sustained fp32 FLOP/s of large square matrix products with `threads` torch threads."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n ** 3 * repeats / (time.perf_counter() - t0)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["lm", "unet", "peak"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    if args.kind == "peak":
        print(json.dumps({"kind": "peak", "threads": args.threads, "flops_per_second": matmul_peak(args.threads)}))
    else:
        print(json.dumps(measure(args.kind, args.steps)))
