"""The data side of a training epoch: images augmented and preprocessed per second, by thread count.

On a GPU the network's step takes a few milliseconds for a batch of 32, so an epoch waits for the
augmentation (rotation, blur, resize on the CPU). This runs ``core.training.epochs.train_one_epoch`` with a
network that costs nothing, so an epoch's time is the batches' preparation alone, for each
``--threads`` value in turn. Usage::

    python benchmarks/augment_throughput.py DATA_DIR [--images 1500] [--augment-size 300] [--threads 0 2 4 8]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    import torch

    from core.imaging.preprocess import Preset
    from core.training.data import scan_folder
    from core.training.epochs import load_images, train_one_epoch

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--images", type=int, default=1500, help="images per epoch (a seeded sample)")
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--augment-size", type=int, default=300)
    parser.add_argument("--threads", type=int, nargs="+", default=[0, 2, 4, 8])
    parser.add_argument("--rounds", type=int, default=3, help="epochs per thread count; the fastest counts")
    args = parser.parse_args()

    # The free network needs no intra-op threads; idle ones would spin on the cores the pool uses
    # (on a GPU the network's work is on the card, so they sit idle the same way).
    torch.set_num_threads(1)
    samples = scan_folder(args.data_dir)
    pick = np.random.default_rng(0).choice(len(samples), size=min(args.images, len(samples)), replace=False)
    preset = Preset(input_size=args.input_size)
    images = load_images([samples[i] for i in sorted(pick)], replace(preset, input_size=args.augment_size))
    labels = np.array([samples[i].label for i in sorted(pick)])

    class Free(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.zeros(len(x), 2, requires_grad=True)

    print(f"{len(images)} images held at {args.augment_size} px, to {args.input_size} px; batches of 32")
    base = None
    for threads in args.threads:
        best = float("inf")
        for _ in range(args.rounds):
            optimiser = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.0)
            started = time.perf_counter()
            train_one_epoch(
                Free(), images, labels, preset=preset, loss_fn=torch.nn.CrossEntropyLoss(), optimiser=optimiser,
                scheduler=torch.optim.lr_scheduler.LambdaLR(optimiser, lambda _s: 1.0), batch_size=32,
                rng=np.random.default_rng(0), do_augment=True, device="cpu", threads=threads,
            )  # fmt: skip
            best = min(best, time.perf_counter() - started)
        base = base or best
        print(
            f"threads {threads}: {best:.2f} s an epoch, {len(images) / best:,.0f} images/s, x{base / best:.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
