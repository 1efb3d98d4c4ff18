r"""Data augmentation for image batches ``(N, C, H, W)``, written by hand.

Three label-preserving perturbations for small images such as the 8×8 digits: integer shifts
with zero padding, small rotations about the image centre (bilinear interpolation through a
sampling grid built here and read by ``F.grid_sample``), and additive Gaussian noise. Every
random function takes an explicit :class:`torch.Generator` (a CPU generator; the random numbers
are drawn on the CPU and moved to the images' device, so a seed gives the same augmentation on
every device). Introduced in chapter 8 (regularization).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = [
    "shift_images",
    "random_shift",
    "rotation_grid",
    "rotate_images",
    "random_rotation",
    "add_gaussian_noise",
    "augment_digits",
]


def _check_images(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"images must be a tensor of shape (N, C, H, W), got {shape}")
    if not x.dtype.is_floating_point:
        raise ValueError(f"images must be floating point, got dtype {x.dtype}")


def shift_images(x: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    r"""Shift image ``n`` by ``shifts[n] = (dy, dx)`` whole pixels, filling with zeros.

    .. math::

        y_{n,c,i,j} = \begin{cases} x_{n,c,\,i - dy_n,\, j - dx_n} & \text{inside the image} \\
        0 & \text{otherwise,} \end{cases}

    so a positive ``dy`` moves the content down and a positive ``dx`` moves it right.

    Args:
        x: images.
        shifts: integer shifts ``(dy, dx)`` per image, each of magnitude below the image size.

    Returns:
        The shifted images.

    Raises:
        ValueError: if ``x`` is not a floating ``(N, C, H, W)`` tensor or ``shifts`` is not an
            integer ``(N, 2)`` tensor with every ``|dy| < H`` and ``|dx| < W``.

    Shape:
        - x: :math:`(N, C, H, W)`
        - shifts: :math:`(N, 2)`
        - output: :math:`(N, C, H, W)`
    """
    _check_images(x)
    N, C, H, W = x.shape
    if shifts.shape != (N, 2) or shifts.dtype.is_floating_point:
        raise ValueError(f"shifts must be an integer tensor of shape ({N}, 2), got {tuple(shifts.shape)} {shifts.dtype}")
    m = max(H, W) - 1  # padding wide enough for any allowed shift
    if N > 0 and (shifts[:, 0].abs().max() > H - 1 or shifts[:, 1].abs().max() > W - 1):
        raise ValueError(f"shifts must satisfy |dy| < {H} and |dx| < {W}, got max |shift| {shifts.abs().max().item()}")
    shifts = shifts.to(x.device).long()
    xp = F.pad(x, (m, m, m, m))  # (N, C, H + 2m, W + 2m), zeros around the image
    rows = torch.arange(H, device=x.device)[None, :] - shifts[:, :1] + m  # (N, H) source row of each output row
    cols = torch.arange(W, device=x.device)[None, :] - shifts[:, 1:] + m  # (N, W) source column
    n = torch.arange(N, device=x.device)[:, None, None]  # (N, 1, 1)
    out = xp.permute(0, 2, 3, 1)[n, rows[:, :, None], cols[:, None, :]]  # (N, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous()  # (N, C, H, W)


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    r"""Shift every image by :math:`(d_y, d_x)` drawn uniformly from :math:`\{-m, \ldots, m\}^2`, :math:`m` = ``max_shift``.

    Args:
        x: images.
        max_shift: the largest shift in pixels, ``0 <= max_shift < min(H, W)``.
        generator: the CPU generator the shifts are drawn from.

    Returns:
        The shifted images (see :func:`shift_images`).

    Shape:
        - x: :math:`(N, C, H, W)`
        - output: :math:`(N, C, H, W)`
    """
    _check_images(x)
    N, _, H, W = x.shape
    if not isinstance(max_shift, int) or not 0 <= max_shift < min(H, W):
        raise ValueError(f"max_shift must be an int in [0, {min(H, W)}), got {max_shift!r}")
    shifts = torch.randint(-max_shift, max_shift + 1, (N, 2), generator=generator)
    return shift_images(x, shifts)


def rotation_grid(angles_deg: torch.Tensor, H: int, W: int) -> torch.Tensor:
    r"""The ``F.grid_sample`` grid that rotates ``H × W`` images counter-clockwise about their centre.

    Output pixel :math:`(i, j)` has centred pixel coordinates :math:`u = j - (W-1)/2`,
    :math:`v = i - (H-1)/2` (:math:`v` points down, as rows do). It reads the input at the
    point that the rotation by :math:`\theta` carries onto it:

    .. math::

        \begin{pmatrix} u_s \\ v_s \end{pmatrix}
        = \begin{pmatrix} \cos\theta & -\sin\theta \\ \sin\theta & \cos\theta \end{pmatrix}
          \begin{pmatrix} u \\ v \end{pmatrix},
        \qquad (x, y)_{\text{grid}} = \left(\frac{2u_s}{W}, \frac{2v_s}{H}\right),

    the last step converting pixel units to ``grid_sample``'s :math:`[-1, 1]` coordinates with
    ``align_corners=False`` (pixel centre :math:`j` sits at :math:`(2j + 1)/W - 1`).

    Args:
        angles_deg: one angle per image, in degrees; positive turns the picture counter-clockwise.
        H: image height.
        W: image width.

    Returns:
        The sampling grid, last dimension ``(x, y)``.

    Shape:
        - angles_deg: :math:`(N,)`
        - output: :math:`(N, H, W, 2)`
    """
    theta = angles_deg.to(torch.float64) * (math.pi / 180.0)  # (N,)
    cos, sin = theta.cos()[:, None, None], theta.sin()[:, None, None]  # (N, 1, 1)
    v = (torch.arange(H, dtype=torch.float64) - (H - 1) / 2)[None, :, None]  # (1, H, 1)
    u = (torch.arange(W, dtype=torch.float64) - (W - 1) / 2)[None, None, :]  # (1, 1, W)
    u_src = cos * u - sin * v  # (N, H, W)
    v_src = sin * u + cos * v  # (N, H, W)
    return torch.stack([2 * u_src / W, 2 * v_src / H], dim=-1)  # (N, H, W, 2)


def rotate_images(x: torch.Tensor, angles_deg: torch.Tensor) -> torch.Tensor:
    r"""Rotate image ``n`` by ``angles_deg[n]`` degrees (counter-clockwise), bilinear, zero fill.

    Args:
        x: images.
        angles_deg: one angle per image, in degrees.

    Returns:
        The rotated images; an angle of 0 returns the input (up to rounding).

    Raises:
        ValueError: if ``x`` is not a floating ``(N, C, H, W)`` tensor or ``angles_deg`` is not ``(N,)``.

    Shape:
        - x: :math:`(N, C, H, W)`
        - angles_deg: :math:`(N,)`
        - output: :math:`(N, C, H, W)`
    """
    _check_images(x)
    N, _, H, W = x.shape
    if angles_deg.shape != (N,):
        raise ValueError(f"angles_deg must have shape ({N},), one angle per image, got {tuple(angles_deg.shape)}")
    grid = rotation_grid(angles_deg.cpu(), H, W).to(device=x.device, dtype=x.dtype)  # (N, H, W, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def random_rotation(x: torch.Tensor, max_degrees: float, generator: torch.Generator) -> torch.Tensor:
    r"""Rotate every image by an angle drawn uniformly from ``[-max_degrees, max_degrees]``.

    Shape:
        - x: :math:`(N, C, H, W)`
        - output: :math:`(N, C, H, W)`
    """
    _check_images(x)
    if not 0.0 <= max_degrees <= 180.0:
        raise ValueError(f"max_degrees must be in [0, 180], got {max_degrees}")
    angles = (torch.rand(x.shape[0], generator=generator, dtype=torch.float64) * 2 - 1) * max_degrees  # (N,)
    return rotate_images(x, angles)


def add_gaussian_noise(x: torch.Tensor, std: float, generator: torch.Generator, clamp: bool = False) -> torch.Tensor:
    r"""Add independent :math:`\mathcal{N}(0, \text{std}^2)` noise to every pixel.

    Args:
        x: images.
        std: standard deviation of the noise, non-negative.
        generator: the CPU generator the noise is drawn from.
        clamp: clip the result to ``[0, 1]`` (the range of the digits' pixels).

    Returns:
        The noisy images.

    Shape:
        - x: :math:`(N, C, H, W)`
        - output: :math:`(N, C, H, W)`
    """
    _check_images(x)
    if not std >= 0.0:
        raise ValueError(f"std must be non-negative, got {std}")
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device) * std  # (N, C, H, W)
    out = x + noise
    return out.clamp(0.0, 1.0) if clamp else out


def augment_digits(
    x: torch.Tensor,
    generator: torch.Generator,
    max_shift: int = 1,
    max_degrees: float = 10.0,
    noise_std: float = 0.05,
) -> torch.Tensor:
    r"""The book's digit augmentation: random shift, then random rotation, then clipped noise.

    Each step is skipped when its strength is 0. Its signature fits the ``transform`` hook of
    :func:`dlscratch.training.classify.fit_classifier` (``transform(x, generator)``).

    Shape:
        - x: :math:`(N, C, H, W)`
        - output: :math:`(N, C, H, W)`
    """
    _check_images(x)
    if max_shift > 0:
        x = random_shift(x, max_shift, generator)
    if max_degrees > 0:
        x = random_rotation(x, max_degrees, generator)
    if noise_std > 0:
        x = add_gaussian_noise(x, noise_std, generator, clamp=True)
    return x
