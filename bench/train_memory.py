"""Peak memory of one ALADIN training step at batch 1024, with and without logit accumulation.

Each variant runs in a fresh process so its peak resident set (CPU) or peak
CUDA allocation is its own. Inputs are random tensors: the step's memory
does not depend on pixel values, and no data set is needed.

    python bench/train_memory.py --input-size 32 --batch 1024 --chunk 64
    python bench/train_memory.py --device cuda --input-size 256
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def one_step(args: argparse.Namespace) -> dict:
    import torch

    from core.model import ModelConfig, build_model
    from trainer.step import Objective, TrainModule, accumulated_step, plain_step

    device = torch.device(args.device)
    module = TrainModule(build_model(ModelConfig(input_size=args.input_size), seed=0)).to(device)
    objective = Objective(tau=0.1, lambda_rec=args.lambda_rec)
    if not objective.reconstruct:
        for part in (module.net.content_encoder, module.net.decoder):
            part.requires_grad_(False)
    x = torch.randn(args.batch, 3, args.input_size, args.input_size, device=device)
    labels = torch.arange(args.batch // 2, device=device).repeat_interleave(2)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    baseline_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.time()
    if args.chunk:
        losses = accumulated_step(module, x, labels, objective, args.chunk)
    else:
        losses = plain_step(module, x, labels, objective)
    out = {"chunk": args.chunk or None, "seconds": round(time.time() - started, 1), "loss": losses.total,
           "rss_before_step_mb": round(baseline_rss), "peak_rss_mb": round(resource.getrusage(
               resource.RUSAGE_SELF).ru_maxrss / 1024)}
    if device.type == "cuda":
        out["cuda_peak_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--input-size", type=int, default=32)
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--chunk", type=int, default=64, help="logit-accumulation chunk for the second run")
    p.add_argument("--lambda-rec", type=float, default=1e-2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(one_step(args)))
        return
    rows = []
    for chunk in (0, args.chunk):
        cmd = [sys.executable, __file__, "--child", "--input-size", str(args.input_size), "--batch", str(args.batch),
               "--chunk", str(chunk), "--lambda-rec", str(args.lambda_rec), "--device", args.device]
        result = subprocess.run(cmd, capture_output=True, text=True, check=True)
        rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
    for row in rows:
        label = f"logit accumulation, chunk {row['chunk']}" if row["chunk"] else "plain full batch"
        cuda = f", CUDA peak {row['cuda_peak_mb']} MiB" if "cuda_peak_mb" in row else ""
        print(f"batch {args.batch} at {args.input_size} px, lambda_rec {args.lambda_rec}, {label}: "
              f"peak RSS {row['peak_rss_mb']} MiB (before step {row['rss_before_step_mb']}){cuda}, "
              f"{row['seconds']} s, loss {row['loss']:.4f}")


if __name__ == "__main__":
    main()
