"""Parameter and FLOP counts of a network, per image."""

import torch
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_flops", "count_parameters"]


def count_parameters(model) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_flops(model, batch=1) -> dict:
    """FLOPs (2 x multiply-accumulates of convolutions and matmuls) of one
    inference, per image, and the parameter count.

    Counted with ``torch.utils.flop_counter.FlopCounterMode`` on a forward
    pass in eval mode; element-wise operations are not counted. A model on
    the grid implementation is charged for the whole axial grid (empty cells
    and unused taps included); on ``impl="gather"`` only for real pixels and
    taps.
    """
    was_training = model.training
    model.eval()
    try:
        param = next(model.parameters())
        shape = (int(batch), int(model.n_pixels))
        image = torch.ones(shape, dtype=param.dtype, device=param.device)
        peak_time = torch.zeros(shape, dtype=param.dtype, device=param.device)
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(image, peak_time)
        flops = counter.get_total_flops()
    finally:
        model.train(was_training)
    return {"flops": flops / batch, "params": count_parameters(model)}
