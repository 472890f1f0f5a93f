"""Estimated GPU cost of the paper-scale parameter sets, from FLOP counts (an estimate, not a measurement).

FLOPs of one forward pass are counted with torch's FlopCounterMode on models built on the meta device
from the published configs (no weights, no download); activation memory of a training step is the
size of the tensors autograd saves for the backward pass. Time = FLOPs / an assumed sustained
throughput (--tflops). Run:  python benchmarks/paper_estimates.py [--tflops 30]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
PUBLIC_OWNERS = 23  # public folders behind the null LoRA, as in the re-implementation (23 brands)


def flops(fn) -> float:
    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def saved_bytes(fn) -> int:
    """Bytes autograd keeps for the backward pass of fn()."""
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return total


def stable_diffusion(p: dict, works_per_owner: int, tflops: float) -> None:
    from diffusers import AutoencoderKL, UNet2DConditionModel

    with torch.device("meta"):  # Stable Diffusion v1.4's UNet and VAE configs
        unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768, attention_head_dim=8,
                                    block_out_channels=(320, 640, 1280, 1280), layers_per_block=2)
        vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
                            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
    side, b = p["image_size"] // 8, p["finetune_batch_size"]
    z = lambda n: torch.empty(n, 4, side, side, device="meta", requires_grad=True)  # noqa: E731
    cond = lambda n: torch.empty(n, 77, 768, device="meta")  # noqa: E731
    t = torch.tensor([500], device="meta")
    unet_f = flops(lambda: unet(z(1), t, encoder_hidden_states=cond(1)))
    vae_f = flops(lambda: vae.encode(torch.empty(1, 3, p["image_size"], p["image_size"], device="meta")))
    act = saved_bytes(lambda: unet(z(b), t, encoder_hidden_states=cond(b)))
    weights = 4 * (sum(x.numel() for x in unet.parameters()) + sum(x.numel() for x in vae.parameters()) + 123_000_000)
    n, spp, evals = p["n_folder_owners"], p["samples_per_prompt"], p["n_strata"] + p["n_decoder"]
    outputs = n * spp
    train = lambda steps, batch: 3 * steps * batch * unet_f  # noqa: E731  forward + backward through activations
    epochs = p.get("finetune_epochs")  # LoRAs of a fixed number of epochs: steps grow with the coalition's works
    ft_steps = lambda k: math.ceil(epochs * k * works_per_owner / b) if epochs else p["finetune_steps"]  # noqa: E731
    public_works = PUBLIC_OWNERS * works_per_owner
    null_steps = (math.ceil(p["pretrain_epochs"] * public_works / p["pretrain_batch_size"])
                  if p.get("pretrain_epochs") else p["pretrain_steps"])
    stages = {
        "null LoRA on public data": train(null_steps, p["pretrain_batch_size"]),
        "control LoRA (the empty coalition)": train(ft_steps(1), b),
        f"{2**n - 1} coalition LoRAs": sum(math.comb(n, k) * train(ft_steps(k), b) for k in range(1, n + 1)),
        f"{outputs} generations (CFG)": outputs * p["sample_steps"] * 2 * unet_f,
        f"likelihoods: {2**n} models x {outputs} outputs x {evals}": 2**n * outputs * (evals * unet_f + vae_f),
    }
    if p.get("shell_split"):
        half = lambda k: (math.ceil(epochs * (k + 0.5) * works_per_owner / b)  # noqa: E731
                          if epochs else p["finetune_steps"])  # one half plus k other owners
        stages[f"shell split: {2**n} new LoRAs"] = 2 * sum(math.comb(n - 1, k) * train(half(k), b) for k in range(n))
        stages[f"shell split: {2**(n + 1)} models' likelihoods"] = 2**(n + 1) * outputs * (evals * unet_f + vae_f)
    print(f"royalty_shares/paper.yaml (Stable Diffusion v1.4, {p['image_size']} px, {n} owners x ~{works_per_owner} works)")
    print(f"  UNet forward {unet_f / 1e12:.2f} TFLOP/image; VAE encode {vae_f / 1e12:.2f} TFLOP/image")
    print(f"  memory: weights {weights / 2**30:.1f} GiB (fp32) + activations of a batch-{b} step "
          f"{act / 2**30:.1f} GiB -> about {(weights + act) / 2**30 * 1.2:.0f} GiB with workspace")
    report(stages, tflops)


def gpt2(p: dict, text_bytes: int, tflops: float, bytes_per_token: float = 4.0) -> None:
    params = 124_000_000
    tokens = text_bytes / bytes_per_token
    # every text (held-out and training sample) is coded chunked and unchunked, encoded and decoded
    coding = 2 * 2 * 2 * 2 * params * tokens
    sweep = 0.0
    for shape in p["sweep_models"].values():
        e, layers = shape["n_embd"], shape["n_layer"]
        n = 12 * layers * e * e + 256 * e
        for d in p["sweep_data_sizes"]:
            steps = max(p["sweep_steps"], p["sweep_epochs"] * d / (p["sweep_batch_size"] * shape["context"]))
            sweep += 6 * n * steps * p["sweep_batch_size"] * shape["context"]
    print(f"lm_compression/paper.yaml (GPT-2 124M, {text_bytes / 1e6:.2f} MB coded per text, ~{bytes_per_token} bytes/token)")
    print(f"  memory: weights 0.5 GiB (fp32) + KV cache 75 MB per coded stream (64 streams per batch: 4.7 GiB)")
    report({"range coding (4 passes x 2 texts)": coding, "byte-model sweep": sweep}, tflops)
    groups = -(-text_bytes // p["chunk_size"] // 64)  # lock-step batches of 64 chunks
    steps = 2 * 2 * (tokens + groups * p["chunk_size"] / bytes_per_token)  # (encode, decode) x 2 texts
    print(f"  coding is latency-bound, not FLOP-bound: about {steps:,.0f} sequential model calls; at 5-10 ms "
          f"each, {steps * 0.005 / 60:.0f}-{steps * 0.010 / 60:.0f} min")


def report(stages: dict, tflops: float) -> None:
    total = sum(stages.values())
    for name, f in stages.items():
        print(f"  {name:<48}{f / 1e15:9.1f} PFLOP {f / (tflops * 1e12) / 3600:7.2f} h")
    print(f"  {'total':<48}{total / 1e15:9.1f} PFLOP {total / (tflops * 1e12) / 3600:7.2f} h at {tflops:g} TFLOP/s sustained")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tflops", type=float, default=30.0, help="sustained throughput of the GPU (A100 fp32/TF32: ~30)")
    parser.add_argument("--works-per-owner", type=int, default=30)
    args = parser.parse_args()
    load = lambda name: yaml.safe_load((ROOT / "params" / name / "paper.yaml").read_text())  # noqa: E731
    stable_diffusion(load("royalty_shares"), args.works_per_owner, args.tflops)
    lm = load("lm_compression")
    gpt2(lm, lm["eval_bytes"], args.tflops)
