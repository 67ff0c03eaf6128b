"""Evolve convolutional networks: image genomes, shapes that stay valid, compute as an axis.

    python examples/image_genomes.py            # full MNIST, 6 generations
    python examples/image_genomes.py --quick    # a 600/200 sample of the bundled subset

Convolutions and pools see the image's shape; every child evolution makes still
fits it, and `gn.validate` says what would fit when a genome does not.
"""

from __future__ import annotations

import argparse

import galapagos_nao as gn


def main() -> None:
    """Parses the command line and runs the example."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny data, two generations")
    args = parser.parse_args()
    task = gn.example.example_task(quick=args.quick)

    # A genome that cannot work is refused up front, with the reason and the fix.
    try:
        gn.validate([("dense", [64, "relu"]), ("conv2d", [8, 3, "relu"])], (1, 28, 28))
    except ValueError as error:
        print(f"refused: {error}")

    # Let a replaced layer become a convolution or a pool too, and bin the archive
    # by layers and by compute (multiply-adds per sample).
    gn.Parameters.put(
        gn.evolution,
        {"layer_types": {"conv2d": [16, 3, "relu"], "max_pool": [2], "dense": [64, "relu"]}},
    )
    gn.Parameters.put(
        gn.Selection, {"measures": ["layers", "flops"], "measure_levels": {"flops": 3}}
    )
    run = gn.example.conv_example(task, generations=2 if args.quick else 6)
    run.wait()
    print(run)
    for cell, net in gn.Selection.get_all().items():
        print(f"cell {cell}: {net.flops:,} multiply-adds, val_acc {net.val_acc:.3f}, {net.layers}")


if __name__ == "__main__":
    main()
