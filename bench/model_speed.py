"""Network time per image for ALADIN-S and -L at several input sizes (no decoding).

What the input-size and variant choices of the default model cost a user's CPU:
``.venv/bin/python bench/model_speed.py --sizes 64,96,128 --variants s,l``.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from core.model import ModelConfig, build_model


def per_image_ms(variant: str, size: int, batch: int, repeats: int, device: str) -> float:
    net = build_model(ModelConfig(variant=variant, input_size=size), seed=0).to(device).eval()
    x = torch.rand(batch, 3, size, size, device=device)
    with torch.inference_mode():
        net.head(net.style_code(x))  # warm-up: allocator, kernels
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(repeats):
            net.head(net.style_code(x))
        if device == "cuda":
            torch.cuda.synchronize()
    return (time.perf_counter() - start) / (repeats * batch) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="64,96,128")
    parser.add_argument("--variants", default="s,l")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    print(f"device {args.device}, torch threads {torch.get_num_threads()}, cores {os.cpu_count()}, "
          f"batch {args.batch}")
    for variant in args.variants.split(","):
        for size in (int(s) for s in args.sizes.split(",")):
            ms = per_image_ms(variant, size, args.batch, args.repeats, args.device)
            print(f"ALADIN-{variant.upper()} {size:4d} px: {ms:7.2f} ms/image  {1000 / ms:8.1f} images/s")


if __name__ == "__main__":
    main()
