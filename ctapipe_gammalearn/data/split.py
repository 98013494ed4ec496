"""Train/validation split by whole files or observations, and class balance.

Events of one shower (the telescopes of one array event) and of one run share
conditions, so they never straddle the split.
"""

import numpy as np

__all__ = ["split_groups", "balance_classes", "class_weights"]


def _group_ids(file_index, obs_id, by):
    if by == "file":
        keys = np.asarray(file_index, dtype=np.int64)
    elif by == "obs":
        keys = np.asarray(file_index, dtype=np.int64) * (1 << 40) + np.asarray(obs_id, dtype=np.int64)
    else:
        raise ValueError(f"split must be 'file' or 'obs', not {by!r}")
    _, groups = np.unique(keys, return_inverse=True)
    return groups


def split_groups(file_index, obs_id, particle, validation_fraction=0.2, by="file", seed=0):
    """Indices ``(train, validation)`` with whole groups (files or file+obs_id) on one side.

    Groups are drawn per class so that each class with at least two groups has
    one in validation; a class with a single group stays in training.
    """
    if not 0 <= validation_fraction < 1:
        raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
    groups = _group_ids(file_index, obs_id, by)
    particle = np.asarray(particle)
    rng = np.random.default_rng(seed)
    validation_groups = []
    for cls in np.unique(particle):
        cls_groups = np.unique(groups[particle == cls])
        if len(cls_groups) < 2 or validation_fraction == 0:
            continue
        sizes = np.bincount(groups[particle == cls], minlength=groups.max() + 1)
        target = validation_fraction * sizes.sum()
        chosen, n = [], 0
        for g in rng.permutation(cls_groups):
            if n >= target or len(chosen) == len(cls_groups) - 1:
                break
            chosen.append(g)
            n += sizes[g]
        validation_groups.extend(chosen)
    is_val = np.isin(groups, validation_groups)
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def balance_classes(indices, particle, seed=0):
    """Undersample every class to the size of the rarest one (deterministic in ``seed``)."""
    indices = np.asarray(indices)
    labels = np.asarray(particle)[indices]
    classes, counts = np.unique(labels, return_counts=True)
    if len(classes) < 2:
        return indices
    rng = np.random.default_rng(seed)
    keep = [rng.choice(indices[labels == c], size=counts.min(), replace=False) for c in classes]
    return np.sort(np.concatenate(keep))


def class_weights(particle, n_classes=2):
    """Inverse-frequency weights per class, mean 1 over the events."""
    counts = np.bincount(np.asarray(particle, dtype=np.int64), minlength=n_classes).astype(np.float64)
    weights = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / n_classes, 0.0)
    return weights.astype(np.float32)
