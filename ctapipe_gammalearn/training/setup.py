"""Building blocks the training tool assembles: optimiser, schedule, AMP choice."""

import torch

from .loop import warmup_cosine

__all__ = ["make_optimizer", "make_scheduler", "amp_dtype"]


def make_optimizer(model, balancer, learning_rate, weight_decay):
    """AdamW; no weight decay on biases, norms and learnt task weights."""
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (decay if param.dim() > 1 else no_decay).append(param)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay + [p for p in balancer.parameters() if p.requires_grad], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=learning_rate)


def make_scheduler(optimizer, kind, steps_per_epoch, epochs, warmup_epochs=1.0):
    if kind == "constant":
        return None
    if kind != "cosine":
        raise ValueError(f"unknown lr schedule {kind!r}")
    total = max(steps_per_epoch * epochs, 1)
    warmup = min(int(round(warmup_epochs * steps_per_epoch)), total // 2)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(total, warmup))


def amp_dtype(choice, device):
    """Autocast dtype: bf16 where the GPU has it, else fp16 (``auto``); on CPU only when
    ``bf16`` is asked for (CPUs with AVX-512 BF16 or AMX run it faster; ``auto`` stays fp32)."""
    if choice == "off":
        return None
    if device.type != "cuda":
        return torch.bfloat16 if choice == "bf16" else None
    if choice == "bf16" or (choice == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return torch.float16
