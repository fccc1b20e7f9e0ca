"""Training speed and peak memory: mmfm.dit.VideoDiT against diffusers' LatteTransformer3DModel, same weights, same config.

    .venv/bin/python benchmarks/bench_dit.py                               # CPU (1 thread), float32, a small Latte config
    python benchmarks/bench_dit.py --device cuda --dtype bf16 --size B     # GPU, bf16 autocast, TFLOP/s vs the chip's peak

One training step = forward on a noisy batch, MSE to a random target, backward, AdamW step. FLOPs per step are counted
with torch.utils.flop_counter (matmuls, convolutions and attention, forward and backward) on the mmfm model; the same
count is used for both, since the two compute the same function.
"""
import argparse, contextlib, multiprocessing as mp, resource, time
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

SIZES = {  # name -> (heads, head_dim, layers, frames, height=width, patch, caption channels, caption tokens)
    "cpu": (4, 32, 2, 8, 16, 2, 64, 8),
    "S": (6, 64, 12, 16, 32, 2, 4096, 120),
    "B": (12, 64, 12, 16, 32, 2, 4096, 120),
    "XL": (16, 72, 28, 16, 32, 2, 4096, 120),   # Latte-1's transformer at 256x256 (32x32 latents)
}
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "H800": 989.0, "A100": 312.0, "A10G": 70.0, "L4": 121.0,
                    "L40S": 362.0, "4090": 165.0, "V100": 125.0}  # dense tensor-core peak, bf16 (V100: fp16)

def build(size, seed=0):
    "A diffusers Latte with random weights and the equal VideoDiT."
    from diffusers import LatteTransformer3DModel
    from mmfm.dit import VideoDiT
    heads, hd, layers, T, S, p, cap, L = SIZES[size]
    torch.manual_seed(seed)
    latte = LatteTransformer3DModel(num_attention_heads=heads, attention_head_dim=hd, in_channels=4, out_channels=8,
                                    num_layers=layers, cross_attention_dim=heads * hd, attention_bias=True, sample_size=S,
                                    patch_size=p, activation_fn="gelu-approximate", norm_type="ada_norm_single",
                                    norm_elementwise_affine=False, norm_eps=1e-6, caption_channels=cap, video_length=T)
    for prm in latte.parameters(): torch.nn.init.normal_(prm, std=0.02)
    return latte, VideoDiT.from_diffusers(latte), (T, S, cap, L)

def inputs(batch, dims, device):
    T, S, cap, L = dims
    g = torch.Generator().manual_seed(1)
    return (torch.randn(batch, 4, T, S, S, generator=g).to(device), torch.randint(0, 1000, (batch,), generator=g).to(device),
            torch.randn(batch, L, cap, generator=g).to(device), torch.randn(batch, 8, T, S, S, generator=g).to(device))

def step_fn(name, model, opt, x, t, txt, target, amp):
    call = (lambda: model(x, timestep=t, encoder_hidden_states=txt).sample) if name == "diffusers" else (lambda: model(x, t, txt))
    def step():
        with amp():
            loss = F.mse_loss(call().float(), target)
        loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
    return step

def run(name, model, batch, dims, device, dtype, steps, warmup):
    "(steps/s, peak memory in MiB) of training `model`."
    model = model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    amp = (lambda: torch.autocast(device_type=device, dtype=torch.bfloat16)) if dtype == "bf16" else contextlib.nullcontext
    step = step_fn(name, model, opt, *inputs(batch, dims, device), amp)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    if device == "cuda": torch.cuda.reset_peak_memory_stats()
    else: base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss   # model built, nothing run yet
    for _ in range(warmup): step()
    sync()
    t0 = time.perf_counter()
    for _ in range(steps): step()
    sync()
    rate = steps / (time.perf_counter() - t0)
    if device == "cuda": peak = torch.cuda.max_memory_allocated() / 2**20   # weights, gradients, optimizer state, activations
    else: peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024  # growth of max RSS while training, MiB
    return rate, peak

def _child(q, name, args):  # a fresh process per model, so that CPU peak memory (max RSS) is the model's own
    if args.threads: torch.set_num_threads(args.threads)
    latte, ours, dims = build(args.size)   # deterministic: the same weights as in the parent
    q.put(run(name, latte if name == "diffusers" else ours, args.batch, dims, args.device, args.dtype, args.steps, args.warmup))

def measure(name, model, args, dims):
    if args.device == "cuda": return run(name, model, args.batch, dims, args.device, args.dtype, args.steps, args.warmup)
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(q, name, args))
    p.start(); res = q.get(); p.join()
    return res

def flops_per_step(model, batch, dims, device, dtype):
    "Forward + backward FLOPs of one training step (optimizer excluded)."
    model = model.to(device).train()
    x, t, txt, target = inputs(batch, dims, device)
    amp = torch.autocast(device_type=device, dtype=torch.bfloat16) if dtype == "bf16" else contextlib.nullcontext()
    with FlopCounterMode(display=False) as fc:
        with amp: loss = F.mse_loss(model(x, t, txt).float(), target)
        loss.backward()
    model.zero_grad(set_to_none=True)
    return fc.get_total_flops()

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--size", default=None, choices=list(SIZES), help="default: cpu on the CPU, B on a GPU")
    ap.add_argument("--batch", type=int, default=None, help="default: 4 on the CPU, 8 on a GPU")
    ap.add_argument("--steps", type=int, default=None, help="timed steps (default: 10 on the CPU, 30 on a GPU)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default on the CPU: 1; on a shared 2-core "
                    "machine a second thread made both models ~10x slower)")
    args = ap.parse_args()
    gpu = args.device == "cuda"
    if gpu and not torch.cuda.is_available(): raise SystemExit("--device cuda: no CUDA device is visible")
    args.size = args.size or ("B" if gpu else "cpu")
    args.batch = args.batch or (8 if gpu else 4)
    args.steps = args.steps or (30 if gpu else 10)
    args.threads = args.threads or (None if gpu else 1)
    if args.threads: torch.set_num_threads(args.threads)
    if gpu: torch.backends.cuda.matmul.allow_tf32 = True

    latte, ours, dims = build(args.size)
    n_params = sum(p.numel() for p in ours.parameters())
    flops = flops_per_step(ours, args.batch, dims, args.device, args.dtype)
    res = {"diffusers": measure("diffusers", latte, args, dims), "mmfm": measure("mmfm", ours, args, dims)}
    dev = torch.cuda.get_device_name() if gpu else f"CPU, {torch.get_num_threads()} threads"
    T, S, cap, L = dims
    print(f"Latte-style DiT '{args.size}': {n_params / 1e6:.2f} M parameters, batch {args.batch} x [4, {T}, {S}, {S}], "
          f"{cap}-channel captions x {L} tokens; {args.dtype} on {dev}")
    print(f"FLOPs per training step (fwd+bwd): {flops / 1e9:.2f} GFLOP")
    peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if gpu and k in dev), None)
    print("peak MiB: " + ("max allocated CUDA memory" if gpu else "growth of the process's max RSS during training (grads, optimizer state, activations)"))
    print(f"{'':10s} {'steps/s':>9s} {'peak MiB':>9s} {'TFLOP/s':>9s} {'% of peak':>9s}")
    for name, (rate, mem) in res.items():
        tf = flops * rate / 1e12
        pct = f"{100 * tf / peak:8.1f}%" if (peak and args.dtype == "bf16") else "     n/a"
        print(f"{name:10s} {rate:9.2f} {mem:9.1f} {tf:9.4f} {pct:>9s}")
    (r_d, m_d), (r_m, m_m) = res["diffusers"], res["mmfm"]
    print(f"ratio mmfm/diffusers: speed {r_m / r_d:.2f}x, peak memory {m_m / max(m_d, 1e-9):.2f}x")
    if gpu and peak is None: print(f"(no bf16 peak on file for {dev!r}; add it to PEAK_BF16_TFLOPS)")

if __name__ == "__main__":
    main()
