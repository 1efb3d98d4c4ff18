"""Hand-written augmentation: exact shifts, identity and 90° rotations, noise statistics, seeding, errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dlscratch.data.augment import (
    add_gaussian_noise,
    augment_digits,
    random_rotation,
    random_shift,
    rotate_images,
    rotation_grid,
    shift_images,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_shift_down_by_one_moves_every_pixel_exactly() -> None:
    x = torch.rand(3, 2, 5, 4)
    y = shift_images(x, torch.tensor([[1, 0]] * 3))
    assert torch.equal(y[:, :, 1:], x[:, :, :-1])  # row i lands on row i + 1
    assert torch.equal(y[:, :, 0], torch.zeros_like(y[:, :, 0]))  # the top row is zero padding


@pytest.mark.parametrize("shape", [(4, 1, 8, 8), (2, 3, 5, 7), (1, 1, 1, 1)])
def test_shift_matches_roll_then_zero_fill(shape) -> None:
    N, C, H, W = shape
    x = torch.rand(shape, dtype=torch.float64)
    shifts = torch.stack([torch.randint(-(H - 1), H, (N,)), torch.randint(-(W - 1), W, (N,))], dim=1)
    y = shift_images(x, shifts)
    for n, (dy, dx) in enumerate(shifts.tolist()):
        want = torch.roll(x[n], (dy, dx), dims=(1, 2))  # independent: roll, then blank what wrapped
        if dy > 0:
            want[:, :dy] = 0
        elif dy < 0:
            want[:, dy:] = 0
        if dx > 0:
            want[:, :, :dx] = 0
        elif dx < 0:
            want[:, :, dx:] = 0
        assert torch.equal(y[n], want), (dy, dx)


def test_zero_shift_and_zero_rotation_are_identity() -> None:
    x = torch.rand(5, 1, 8, 8)
    assert torch.equal(shift_images(x, torch.zeros(5, 2, dtype=torch.long)), x)
    torch.testing.assert_close(rotate_images(x, torch.zeros(5)), x, atol=1e-6, rtol=0)
    torch.testing.assert_close(random_rotation(x, 0.0, _gen()), x, atol=1e-6, rtol=0)
    assert torch.equal(random_shift(x, 0, _gen()), x)


@pytest.mark.parametrize("size", [(8, 8), (5, 5), (6, 6)])
def test_rotation_by_90_degrees_matches_rot90(size) -> None:
    x = torch.rand(2, 3, *size, dtype=torch.float64)
    # counter-clockwise as displayed (row 0 on top), like torch.rot90 from dim H towards dim W
    torch.testing.assert_close(rotate_images(x, torch.full((2,), 90.0)), torch.rot90(x, 1, dims=(2, 3)))
    torch.testing.assert_close(rotate_images(x, torch.full((2,), -90.0)), torch.rot90(x, -1, dims=(2, 3)))
    torch.testing.assert_close(rotate_images(x, torch.full((2,), 180.0)), torch.rot90(x, 2, dims=(2, 3)))


@pytest.mark.parametrize(("H", "W"), [(8, 8), (5, 9)])
def test_rotation_grid_matches_affine_grid_for_square_or_zero_angle(H, W) -> None:
    angles = torch.tensor([0.0, 17.0, -33.0]) if H == W else torch.zeros(3)
    theta = angles.double().deg2rad()
    c, s = theta.cos(), theta.sin()
    affine = torch.stack([torch.stack([c, -s, 0 * c], -1), torch.stack([s, c, 0 * c], -1)], dim=1)  # (N, 2, 3)
    ref = F.affine_grid(affine, (3, 1, H, W), align_corners=False)
    torch.testing.assert_close(rotation_grid(angles, H, W), ref)


def test_rotation_preserves_a_centred_disc() -> None:
    i = torch.arange(16.0) - 7.5
    disc = ((i[:, None] ** 2 + i[None, :] ** 2) < 20).double()[None, None].repeat(4, 1, 1, 1)
    y = rotate_images(disc, torch.tensor([10.0, 30.0, -45.0, 77.0]))
    assert (y.sum(dim=(1, 2, 3)) - disc.sum(dim=(1, 2, 3))).abs().max() < 0.05 * disc[0].sum()


def test_noise_has_the_requested_std_and_mean_zero() -> None:
    x = torch.full((200, 1, 16, 16), 0.5, dtype=torch.float64)
    noise = add_gaussian_noise(x, 0.3, _gen()) - x
    assert abs(noise.std().item() - 0.3) < 0.005
    assert abs(noise.mean().item()) < 0.005
    clipped = add_gaussian_noise(x, 2.0, _gen(), clamp=True)
    assert clipped.min() == 0.0 and clipped.max() == 1.0


@pytest.mark.parametrize(
    "fn",
    [
        lambda x, g: random_shift(x, 2, g),
        lambda x, g: random_rotation(x, 15.0, g),
        lambda x, g: add_gaussian_noise(x, 0.1, g),
        lambda x, g: augment_digits(x, g),
    ],
)
def test_reproducible_under_a_seed_and_different_across_seeds(fn) -> None:
    x = torch.rand(16, 1, 8, 8)
    a, b, c = fn(x, _gen(1)), fn(x, _gen(1)), fn(x, _gen(2))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert a.shape == x.shape and a.dtype == x.dtype


def test_random_shift_draws_every_shift_in_range() -> None:
    x = torch.zeros(2000, 1, 5, 5)
    x[:, :, 2, 2] = 1.0  # one lit pixel in the centre
    y = random_shift(x, 2, _gen())
    rows, cols = y[:, 0].flatten(1).argmax(1).div(5, rounding_mode="floor"), y[:, 0].flatten(1).argmax(1) % 5
    assert set(rows.tolist()) == set(range(5)) and set(cols.tolist()) == set(range(5))
    assert y.sum(dim=(1, 2, 3)).eq(1).all()  # a shift of at most 2 keeps the centre pixel inside


def test_augment_digits_keeps_pixels_in_unit_range() -> None:
    x = torch.rand(32, 1, 8, 8)
    y = augment_digits(x, _gen(), max_shift=1, max_degrees=10.0, noise_std=0.5)
    assert y.min() >= 0 and y.max() <= 1
    assert torch.equal(augment_digits(x, _gen(), max_shift=0, max_degrees=0.0, noise_std=0.0), x)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: shift_images(torch.rand(2, 8, 8), torch.zeros(2, 2, dtype=torch.long)), r"\(2, 8, 8\)"),
        (lambda: shift_images(torch.ones(2, 1, 8, 8, dtype=torch.long), torch.zeros(2, 2, dtype=torch.long)), "int64"),
        (lambda: shift_images(torch.rand(2, 1, 8, 8), torch.zeros(2, 2)), r"\(2, 2\)"),
        (lambda: shift_images(torch.rand(2, 1, 8, 8), torch.tensor([[8, 0], [0, 0]])), "8"),
        (lambda: random_shift(torch.rand(2, 1, 8, 8), 8, _gen()), "8"),
        (lambda: rotate_images(torch.rand(2, 1, 8, 8), torch.zeros(3)), r"\(3,\)"),
        (lambda: random_rotation(torch.rand(8, 8), 10.0, _gen()), r"\(8, 8\)"),
        (lambda: add_gaussian_noise(torch.rand(2, 1, 8, 8), -0.1, _gen()), "-0.1"),
        (lambda: augment_digits(torch.rand(64), _gen()), r"\(64,\)"),
    ],
)
def test_bad_input(call, match) -> None:
    with pytest.raises(ValueError, match=match):
        call()
