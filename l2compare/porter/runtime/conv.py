"""Runtime helpers copied verbatim into generated files (they may use only torch, nn, F, math)."""
import torch
from torch.nn import functional as F


def avg_pool_same(x, kernel, stride, pads):
    """Average pooling with TensorFlow's 'same' padding, channels first, 1-D or 2-D.

    TensorFlow pads unevenly (`pads`, in F.pad's order: the odd element at the end) and divides
    each window's sum by the number of real elements in it, not by the window size; torch's
    count_include_pad=False does the division but takes only symmetric padding."""
    if x.dim() == 3:   # 1-D as a one-row image: avg_pool1d has no divisor_override
        return avg_pool_same(x.unsqueeze(2), (1, *kernel), (1, *stride), pads).squeeze(2)
    sums = F.avg_pool2d(F.pad(x, pads), kernel, stride, divisor_override=1)
    counts = F.avg_pool2d(F.pad(torch.ones_like(x[:1, :1]), pads), kernel, stride, divisor_override=1)
    return sums / counts
