"""One command for all GPUs of a node, or of several: the training tool starts its own DDP workers.

``torchrun ... ctapipe-train-gammalearn --signal F`` fails, because torchrun's parser takes
``--signal`` for an abbreviation of its own ``--signals-to-handle``. With
``ctapipe-train-gammalearn --nproc-per-node N ...`` the tool reads the launcher's options
itself and starts the workers through torch's elastic launcher (what torchrun runs), so
every other option reaches the tool unchanged. torchrun keeps working as before.
"""

import argparse
import os
import uuid

__all__ = ["LAUNCH_HELP", "launch", "split_launch_args", "wants_launch"]

LAUNCH_HELP = """
Several processes (DDP) with one command, one per GPU (gloo on CPU with --device=cpu):
  --nproc-per-node N      worker processes on this machine
  --nnodes N|MIN:MAX      machines taking part (default 1)
  --rdzv-endpoint H:P     rendezvous host:port, the same on every machine (default: a free local port)
  --rdzv-id ID            job id, the same on every machine (default: a new one)
  --rdzv-backend NAME     rendezvous backend (default c10d)
  --max-restarts N        restarts of the whole group after a worker fails (default 0)
"""


def _parser():
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--nproc-per-node", "--nproc_per_node", type=int, default=None)
    parser.add_argument("--nnodes", default="1")
    parser.add_argument("--rdzv-endpoint", "--rdzv_endpoint", default=None)
    parser.add_argument("--rdzv-id", "--rdzv_id", default=None)
    parser.add_argument("--rdzv-backend", "--rdzv_backend", default="c10d")
    parser.add_argument("--max-restarts", "--max_restarts", type=int, default=0)
    return parser


def split_launch_args(argv):
    """(launcher options, the tool's own arguments) of a command line."""
    options, rest = _parser().parse_known_args(list(argv))
    return options, rest


def wants_launch(options) -> bool:
    """True when the command asks for workers and this process is not one of them already."""
    return options.nproc_per_node is not None and "TORCHELASTIC_RUN_ID" not in os.environ


def _nodes(spec):
    low, _, high = str(spec).partition(":")
    return int(low), int(high or low)


def launch(options, entrypoint, *args):
    """Run ``entrypoint(*args)`` in ``options.nproc_per_node`` processes per node with the
    DDP environment set (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, ...).

    Returns the workers' return values by rank; raises torch's ``ChildFailedError`` naming
    the failed rank when one fails.
    """
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    min_nodes, max_nodes = _nodes(options.nnodes)
    single = max_nodes == 1
    if not single and options.rdzv_endpoint is None:
        raise ValueError("--rdzv-endpoint host:port is needed with more than one node")
    config = LaunchConfig(
        min_nodes=min_nodes,
        max_nodes=max_nodes,
        nproc_per_node=options.nproc_per_node,
        run_id=options.rdzv_id or (uuid.uuid4().hex if single else "none"),
        rdzv_backend=options.rdzv_backend,
        rdzv_endpoint=options.rdzv_endpoint or "localhost:0",
        max_restarts=options.max_restarts,
        start_method="spawn",
    )
    return elastic_launch(config, entrypoint)(*args)
