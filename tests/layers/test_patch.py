import pytest
import torch
from torch import nn

from dlscratch.layers.patch import PatchEmbedding, patchify, unpatchify
from tests.helpers import assert_same_forward_backward


@pytest.mark.parametrize("C,H,W,P", [(1, 28, 28, 7), (3, 8, 12, 4), (2, 5, 5, 1), (1, 6, 6, 6)])
def test_patchify_round_trip_and_layout(C, H, W, P):
    x = torch.randn(2, C, H, W, dtype=torch.float64)
    p = patchify(x, P)
    assert p.shape == (2, H * W // P**2, C * P * P)
    assert torch.equal(unpatchify(p, P, C, H, W), x)
    # patch n = i (W/P) + j holds pixel (c, iP+u, jP+v) at c P^2 + u P + v
    i, j, c, u, v = H // P - 1, 0, C - 1, P - 1, P // 2
    assert p[1, i * (W // P) + j, c * P * P + u * P + v] == x[1, c, i * P + u, j * P + v]


@pytest.mark.parametrize("bias", [True, False])
def test_patch_embedding_equals_unfold_plus_linear_and_conv(bias):
    C, P, D = 3, 4, 5
    ours = PatchEmbedding(C, P, D, bias=bias).double()
    conv = nn.Conv2d(C, D, P, stride=P, bias=bias).double()
    conv.load_state_dict(ours.state_dict())
    x = torch.randn(2, C, 8, 12, dtype=torch.float64)
    assert_same_forward_backward(ours, lambda t: conv(t).flatten(2).transpose(1, 2), [x], modules=(ours, conv))
    linear = nn.Linear(C * P * P, D, bias=bias).double()
    with torch.no_grad():
        linear.weight.copy_(ours.weight.reshape(D, -1))
        if bias:
            linear.bias.copy_(ours.bias)
    torch.testing.assert_close(ours(x), linear(patchify(x, P)))


def test_bad_sizes_name_the_numbers():
    with pytest.raises(ValueError, match="28x28 is not divisible by the patch size 5"):
        patchify(torch.zeros(1, 1, 28, 28), 5)
    with pytest.raises(ValueError, match="patch_size must be a positive int"):
        PatchEmbedding(1, 0, 4)
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        PatchEmbedding(1, 4, 8)(torch.zeros(2, 3, 8, 8))
