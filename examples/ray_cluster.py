"""Train candidates on a Ray cluster: a local one, or one you started with `ray start`.

    python examples/ray_cluster.py                       # starts a local Ray on this machine
    python examples/ray_cluster.py --address HEAD:6379   # joins a running cluster
    python examples/ray_cluster.py --quick               # a 600/200 sample of the bundled subset

Needs the `ray` extra (pip install 'galapagos-nao[ray]') on this machine and on
every node. The session is the same as with the local threads: one parameter
chooses the backend.
"""

from __future__ import annotations

import argparse

import galapagos_nao as gn


def main() -> None:
    """Parses the command line and runs the example."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny data, two generations")
    parser.add_argument("--address", help="a Ray cluster to join (default: RAY_ADDRESS or local)")
    args = parser.parse_args()
    task = gn.example.example_task(quick=args.quick)

    # Each candidate becomes a Ray task reserving one CPU; `num_gpus: 0.25` would
    # pack four candidates onto one GPU.
    gn.Parameters.put(
        gn.orchestration, {"backend": "ray", "ray_address": args.address, "num_cpus": 1}
    )
    try:
        run = gn.example.short_example(task)
        run.result()  # waits, and re-raises what stopped the run if it failed
        print(run)
        for level, net in gn.Selection.get_all().items():
            print(f"level {level}: {net!r}")
    finally:
        # Stops a local Ray this process started; only disconnects from a cluster it joined.
        gn.ray_backend.disconnect()


if __name__ == "__main__":
    main()
