"""LeNet and ResNet: against a functional torch re-implementation, parameter counts, shortcuts, errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dlscratch.models import BasicBlock, LeNet, LeNetConfig, ResNet, ResNetConfig


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ---- independent formulations, written with torch.nn.functional on the state dict
def lenet_reference(sd: dict[str, torch.Tensor], cfg: LeNetConfig, x: torch.Tensor) -> torch.Tensor:
    for i in range(len(cfg.channels)):
        w, b = sd[f"features.{3 * i}.weight"], sd[f"features.{3 * i}.bias"]
        x = F.max_pool2d(F.relu(F.conv2d(x, w, b, padding=cfg.kernel_size // 2)), 2)
    x = F.relu(F.linear(x.flatten(1), sd["classifier.1.weight"], sd["classifier.1.bias"]))
    return F.linear(x, sd["classifier.3.weight"], sd["classifier.3.bias"])


def _bn(x: torch.Tensor, sd: dict[str, torch.Tensor], prefix: str) -> torch.Tensor:
    return F.batch_norm(x, None, None, sd[prefix + ".weight"], sd[prefix + ".bias"], training=True)


def resnet_reference(sd: dict[str, torch.Tensor], cfg: ResNetConfig, x: torch.Tensor) -> torch.Tensor:
    x = F.relu(_bn(F.conv2d(x, sd["stem.0.weight"], padding=1), sd, "stem.1"))
    i = 0
    for stage, n in enumerate(cfg.blocks):
        for j in range(n):
            p, s = f"blocks.{i}", 2 if stage > 0 and j == 0 else 1
            out = F.relu(_bn(F.conv2d(x, sd[p + ".conv1.weight"], stride=s, padding=1), sd, p + ".bn1"))
            out = _bn(F.conv2d(out, sd[p + ".conv2.weight"], padding=1), sd, p + ".bn2")
            if cfg.skip:
                if p + ".shortcut.0.weight" in sd:
                    out = out + _bn(F.conv2d(x, sd[p + ".shortcut.0.weight"], stride=s), sd, p + ".shortcut.1")
                else:
                    out = out + x
            x = F.relu(out)
            i += 1
    return F.linear(x.mean((2, 3)), sd["head.weight"], sd["head.bias"])


LENET_CONFIGS = [
    LeNetConfig.digits(),
    LeNetConfig(in_channels=3, image_size=12, channels=(4, 5), kernel_size=5, hidden=7, n_classes=3),
]
RESNET_CONFIGS = [
    ResNetConfig.digits(),
    ResNetConfig.digits(skip=False),
    ResNetConfig.digits_wide(),
    ResNetConfig(in_channels=3, n_classes=4, stem_channels=5, widths=(5, 6, 7), blocks=(1, 2, 1)),
    ResNetConfig(stem_channels=4, widths=(6,), blocks=(2,)),  # projection without stride (4 -> 6 channels)
    ResNetConfig.deep(n_blocks=3, width=4, skip=False),
]


@pytest.mark.parametrize("cfg", LENET_CONFIGS, ids=str)
def test_lenet_matches_functional_reference(cfg: LeNetConfig) -> None:
    model = LeNet(cfg).double()
    x = torch.randn(3, cfg.in_channels, cfg.image_size, cfg.image_size, dtype=torch.float64)
    y = model(x)
    assert y.shape == (3, cfg.n_classes)
    torch.testing.assert_close(y, lenet_reference(model.state_dict(), cfg, x))


@pytest.mark.parametrize("cfg", RESNET_CONFIGS, ids=str)
@pytest.mark.parametrize("size", [8, 5])
def test_resnet_matches_functional_reference(cfg: ResNetConfig, size: int) -> None:
    model = ResNet(cfg).double()
    x = torch.randn(4, cfg.in_channels, size, size, dtype=torch.float64)
    y = model(x)
    assert y.shape == (4, cfg.n_classes)
    torch.testing.assert_close(y, resnet_reference(model.state_dict(), cfg, x))


def lenet_param_formula(c: LeNetConfig) -> int:
    total, c_in = 0, c.in_channels
    for c_out in c.channels:
        total += c_out * c_in * c.kernel_size**2 + c_out  # conv weight + bias
        c_in = c_out
    flat = c_in * (c.image_size // 2 ** len(c.channels)) ** 2
    return total + flat * c.hidden + c.hidden + c.hidden * c.n_classes + c.n_classes


def resnet_param_formula(c: ResNetConfig) -> int:
    total = 9 * c.in_channels * c.stem_channels + 2 * c.stem_channels  # stem conv (no bias) + BN
    c_in = c.stem_channels
    for stage, (w, n) in enumerate(zip(c.widths, c.blocks)):
        for j in range(n):
            stride = 2 if stage > 0 and j == 0 else 1
            total += 9 * c_in * w + 2 * w + 9 * w * w + 2 * w  # two 3x3 convs + two BNs
            if c.skip and (stride != 1 or c_in != w):
                total += c_in * w + 2 * w  # 1x1 projection + BN
            c_in = w
    return total + c_in * c.n_classes + c.n_classes


@pytest.mark.parametrize("cfg", LENET_CONFIGS, ids=str)
def test_lenet_parameter_count(cfg: LeNetConfig) -> None:
    assert n_params(LeNet(cfg)) == lenet_param_formula(cfg)


@pytest.mark.parametrize("cfg", RESNET_CONFIGS, ids=str)
def test_resnet_parameter_count(cfg: ResNetConfig) -> None:
    assert n_params(ResNet(cfg)) == resnet_param_formula(cfg)


def test_digits_presets_by_hand() -> None:
    # LeNet: conv 1->16 (160), conv 16->32 (4640), fc 128->64 (8256), fc 64->10 (650)
    assert n_params(LeNet(LeNetConfig.digits())) == 160 + 4640 + 8256 + 650
    assert ResNetConfig.digits().n_conv_layers == 9 and ResNetConfig.deep(12).n_conv_layers == 25


def test_skip_false_removes_every_shortcut() -> None:
    plain, res = ResNet(ResNetConfig.digits(skip=False)), ResNet(ResNetConfig.digits())
    assert all(b.shortcut is None for b in plain.blocks)
    assert all(b.shortcut is not None for b in res.blocks)
    # the only parameters the plain net lacks are the projection's
    assert n_params(res) - n_params(plain) == 16 * 32 + 2 * 32


@pytest.mark.parametrize("skip", [True, False])
def test_block_with_zeroed_main_path(skip: bool) -> None:
    # with the last BN's scale and shift at zero, F(x) = 0: the block is relu(x) with a shortcut, 0 without
    block = BasicBlock(3, 3, skip=skip).double()
    with torch.no_grad():
        block.bn2.weight.zero_()
        block.bn2.bias.zero_()
    x = torch.randn(2, 3, 5, 5, dtype=torch.float64, requires_grad=True)
    y = block(x)
    torch.testing.assert_close(y, torch.relu(x) if skip else torch.zeros_like(x))
    y.sum().backward()
    assert (x.grad.abs().sum() > 0) == skip  # the gradient reaches x only through the shortcut


def test_block_shortcut_kinds() -> None:
    assert isinstance(BasicBlock(4, 4).shortcut, torch.nn.Identity)
    for block in (BasicBlock(4, 8), BasicBlock(4, 4, stride=2)):
        assert isinstance(block.shortcut, torch.nn.Sequential)
    assert BasicBlock(4, 8, stride=2)(torch.randn(2, 4, 7, 7)).shape == (2, 8, 4, 4)


def test_config_errors() -> None:
    with pytest.raises(ValueError, match="image_size 10 must be divisible by 2\\*\\*2 = 4"):
        LeNetConfig(image_size=10)
    with pytest.raises(ValueError, match="kernel_size must be odd.*got 4"):
        LeNetConfig(kernel_size=4)
    with pytest.raises(ValueError, match="hidden must be positive, got 0"):
        LeNetConfig(hidden=0)
    with pytest.raises(ValueError, match=r"2 widths \(16, 32\) and 3 block counts \(1, 1, 1\)"):
        ResNetConfig(widths=(16, 32), blocks=(1, 1, 1))
    with pytest.raises(ValueError, match=r"blocks \(2, 0\)"):
        ResNetConfig(blocks=(2, 0))
    with pytest.raises(ValueError, match="stem_channels must be positive, got -1"):
        ResNetConfig(stem_channels=-1)
    with pytest.raises(Exception):  # frozen
        ResNetConfig().skip = False  # type: ignore[misc]


def test_input_errors() -> None:
    with pytest.raises(ValueError, match=r"\(B, 1, 8, 8\), got \(2, 1, 16, 16\)"):
        LeNet(LeNetConfig.digits())(torch.randn(2, 1, 16, 16))
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\), got \(2, 3, 8, 8\)"):
        ResNet(ResNetConfig.digits())(torch.randn(2, 3, 8, 8))
