"""``python -m ctapipe_gammalearn.training.upgrade FILE...``: rewrite trusted checkpoints of an
older version (pickled numpy objects) in the safe format that ``weights_only=True`` reads.

Reading such a file runs whatever code it holds: only for checkpoints of known origin.
"""

import sys

from .checkpoint import upgrade_checkpoint

__all__ = ["main"]


def main(argv=None):
    paths = sys.argv[1:] if argv is None else list(argv)
    if not paths or any(p.startswith("-") for p in paths):
        print("usage: python -m ctapipe_gammalearn.training.upgrade FILE... (only files you trust)", file=sys.stderr)
        return 2
    for path in paths:
        upgrade_checkpoint(path)
        print(f"{path}: rewritten in the safe checkpoint format")
    return 0


if __name__ == "__main__":
    sys.exit(main())
