"""AutoAugment (CIFAR-10 policy) on a whole batch, with a sub-policy drawn per image and no host syncs.

torchvision's ``v2.AutoAugment`` draws one sub-policy per call from the global RNG, so a batch
tensor would get the same operations on every image. Here the draws (sub-policy, whether each
of its two operations fires, the sign of signed magnitudes) are made per image from the
batch's generator. Each operation then runs once per position on the whole batch with a
magnitude per image, and ``torch.where`` keeps its result for the images that drew it: no
per-operation subsets (each a ``nonzero``, i.e. a GPU sync), ~20 batch-wide kernels in all.
The five geometric operations share one sampling grid per position.

The policy table and the magnitude bins are torchvision's; every kernel computes what
torchvision's kernel of the same name computes for one image (tests compare them, operation by
operation), only with a factor per image.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

GEOMETRIC = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")
NUM_BINS = 10
MAX = 255.0


def affine(images: Tensor, angle: Tensor, translate: Tensor, shear: Tensor, centre: Tensor, fill: int = 0) -> Tensor:
    """torchvision's ``affine`` (nearest pixel, scale 1, pixels from outside the image set to `fill`) with parameters per image.

    `angle` (N,) degrees, `translate` (N, 2) pixels, `shear` (N, 2) degrees, `centre` (N, 2) the
    centre of the transform relative to the image centre, all float64; the inverse matrix is
    torchvision's ``_get_inverse_affine_matrix``, and the grid its ``_affine_grid``.
    """
    n, _, h, w = images.shape
    rot, sx, sy = torch.deg2rad(angle), torch.deg2rad(shear[:, 0]), torch.deg2rad(shear[:, 1])
    cx, cy = centre[:, 0], centre[:, 1]
    tx, ty = translate[:, 0], translate[:, 1]
    a = torch.cos(rot - sy) / torch.cos(sy)
    b = -(a * torch.tan(sx) + torch.sin(rot))
    c = torch.sin(rot - sy) / torch.cos(sy)
    d = torch.cos(rot) - c * torch.tan(sx)
    m0, m1, m3, m4 = d, -b, -c, a
    m2 = cx - m0 * (cx + tx) - m1 * (cy + ty)
    m5 = cy - m3 * (cx + tx) - m4 * (cy + ty)
    theta = torch.stack([m0, m1, m2, m3, m4, m5], 1).view(n, 2, 3).float()
    xs = torch.linspace((1.0 - w) * 0.5, (w - 1.0) * 0.5, steps=w, device=images.device)
    ys = torch.linspace((1.0 - h) * 0.5, (h - 1.0) * 0.5, steps=h, device=images.device)
    base = torch.stack([xs.expand(h, w), ys[:, None].expand(h, w), torch.ones(h, w, device=images.device)], -1)
    rescaled = theta.transpose(1, 2).clone()  # to grid_sample's [-1, 1] coordinates
    rescaled[..., 0] /= 0.5 * w
    rescaled[..., 1] /= 0.5 * h
    grid = torch.matmul(base.view(1, h * w, 3), rescaled).view(n, h, w, 2)
    sampled = F.grid_sample(images.float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)
    if fill:  # as torchvision: sample a mask of ones alongside, and fill where it came from outside
        inside = F.grid_sample(torch.ones_like(images[:, :1], dtype=torch.float), grid, mode="nearest", align_corners=False)
        sampled = torch.where(inside < 0.5, float(fill), sampled)
    return sampled.round_().to(images.dtype)


def _per_image(values: Tensor) -> Tensor:
    """(N,) -> (N, 1, 1, 1), to broadcast over an image batch."""
    return values.view(-1, 1, 1, 1)


def _blend(images: Tensor, other: Tensor, ratio: Tensor) -> Tensor:
    """``ratio * images + (1 - ratio) * other``, clamped and truncated to uint8 (torchvision's ``_blend``)."""
    out = (images * _per_image(ratio.float())).addcmul_(other, _per_image((1.0 - ratio).float()))
    return out.clamp_(0, MAX).to(images.dtype)


def _grayscale(images: Tensor) -> Tensor:
    """ITU-R 601-2 luma of RGB images, floored, as float (N, 1, H, W)."""
    r, g, b = images.float().unbind(1)
    return (r * 0.2989 + g * 0.587 + b * 0.114).floor_().unsqueeze(1)


def brightness(images: Tensor, factor: Tensor) -> Tensor:
    return (images * _per_image(factor.float())).clamp_(0, MAX).to(images.dtype)


def saturation(images: Tensor, factor: Tensor) -> Tensor:
    if images.shape[1] == 1:
        return images
    return _blend(images, _grayscale(images), factor)


def contrast(images: Tensor, factor: Tensor) -> Tensor:
    grey = _grayscale(images) if images.shape[1] == 3 else images.float()
    return _blend(images, grey.mean(dim=(1, 2, 3), keepdim=True), factor)


def sharpness(images: Tensor, factor: Tensor) -> Tensor:
    """Blend with a 3x3 smoothing (5 in the middle, 1 around) everywhere but the one-pixel border."""
    c = images.shape[1]
    kernel = torch.full((3, 3), 1.0 / 13.0, device=images.device)  # made on the device: no copy from the host
    kernel[1, 1] = 5.0 / 13.0
    out = images.float()
    blurred = F.conv2d(out, kernel.expand(c, 1, 3, 3), groups=c).round_()
    inner = out[..., 1:-1, 1:-1]
    inner.addcmul_(blurred - inner, _per_image((1.0 - factor).float()))
    return out.clamp_(0, MAX).to(images.dtype)


def posterize(images: Tensor, bits: Tensor) -> Tensor:
    bits = bits.long()
    mask = (((1 << bits) - 1) << (8 - bits)).to(images.dtype)
    return images & _per_image(mask)


def solarize(images: Tensor, threshold: Tensor) -> Tensor:
    return torch.where(images >= _per_image(threshold.float()), images.bitwise_not(), images)


def autocontrast(images: Tensor) -> Tensor:
    """Stretch each channel to [0, 255]; a constant channel is left as it is."""
    x = images.float()
    low, high = x.amin(dim=(-2, -1), keepdim=True), x.amax(dim=(-2, -1), keepdim=True)
    flat = high == low
    scale = torch.where(flat, 1.0, (high - low) * (1.0 / MAX))
    low = torch.where(flat, 0.0, low)
    return ((x - low) / scale).clamp_(0, MAX).to(images.dtype)


def equalize(images: Tensor) -> Tensor:
    from torchvision.transforms.v2.functional import equalize as torchvision_equalize

    return torchvision_equalize(images)  # already batched and sync-free


def invert(images: Tensor) -> Tensor:
    return images.bitwise_not()


def colour_operation(name: str, images: Tensor, magnitude: Tensor) -> Tensor:
    """The non-geometric operation `name` with a signed magnitude per image, as torchvision's AutoAugment applies it."""
    if name == "Brightness":
        return brightness(images, 1.0 + magnitude)
    if name == "Color":
        return saturation(images, 1.0 + magnitude)
    if name == "Contrast":
        return contrast(images, 1.0 + magnitude)
    if name == "Sharpness":
        return sharpness(images, 1.0 + magnitude)
    if name == "Posterize":
        return posterize(images, magnitude)
    if name == "Solarize":
        return solarize(images, MAX * magnitude)
    if name == "AutoContrast":
        return autocontrast(images)
    if name == "Equalize":
        return equalize(images)
    if name == "Invert":
        return invert(images)
    raise ValueError(f"unknown AutoAugment operation {name}")


def geometric_operation(images: Tensor, doing: dict[str, Tensor], magnitude: Tensor, fill: int = 0) -> Tensor:
    """Each image's shear, translation or rotation, in one sampling grid.

    `doing[op]` masks the images that apply geometric operation `op` (absent: none does).
    Parameters follow torchvision's AutoAugment: shears turn about the top-left corner by
    atan(magnitude), translations move by whole pixels, rotations turn counter-clockwise.
    """
    _, _, h, w = images.shape
    zero = torch.zeros_like(magnitude)
    nobody = torch.zeros_like(magnitude, dtype=torch.bool)

    def only(op: str, value: Tensor) -> Tensor:
        return torch.where(doing.get(op, nobody), value, zero)

    shear_degrees = torch.rad2deg(torch.atan(magnitude))
    shear = torch.stack([only("ShearX", shear_degrees), only("ShearY", shear_degrees)], 1)
    translate = torch.stack([only("TranslateX", magnitude.trunc()), only("TranslateY", magnitude.trunc())], 1)
    angle = only("Rotate", -torch.remainder(magnitude, 360.0))  # rotate(a) is the affine of -(a mod 360)
    about_corner = doing.get("ShearX", nobody) | doing.get("ShearY", nobody)
    centre = torch.stack([torch.where(about_corner, -w * 0.5, zero), torch.where(about_corner, -h * 0.5, zero)], 1)
    return affine(images, angle, translate, shear, centre, fill)


@dataclass(frozen=True)
class PolicyTable:
    """One position (first or second operation) of every sub-policy, as tensors indexed by sub-policy."""

    names: tuple[str, ...]
    """The operations this position uses; ``op`` indexes into it."""
    op: Tensor
    probability: Tensor
    magnitude: Tensor
    """Unsigned magnitude of the sub-policy's bin (float64; 0 for operations without one)."""
    signed: Tensor


class CifarAutoAugment:
    """AutoAugment, CIFAR-10 policy, with a sub-policy drawn for every image of a batch.

    `fill` is the value geometric operations give pixels that come from outside the image.
    """

    def __init__(self, fill: int = 0) -> None:
        self.fill = fill
        from torchvision.transforms.v2 import AutoAugment, AutoAugmentPolicy

        torchvision = AutoAugment(AutoAugmentPolicy.CIFAR10)
        self.policies: list[tuple[tuple[str, float, int | None], ...]] = list(torchvision._policies)
        self.space = torchvision._AUGMENTATION_SPACE
        self._tables: dict[tuple[torch.device, int, int], list[PolicyTable]] = {}

    def tables(self, device: torch.device, h: int, w: int) -> list[PolicyTable]:
        """The per-position tables on `device` for `h` x `w` images (made once: no copy per batch)."""
        key = (device, h, w)
        if key not in self._tables:
            self._tables[key] = [self._table(position, device, h, w) for position in range(2)]
        return self._tables[key]

    def _table(self, position: int, device: torch.device, h: int, w: int) -> PolicyTable:
        steps = [policy[position] for policy in self.policies]
        names = tuple(sorted({name for name, _, _ in steps}))
        magnitudes = []
        for name, _, magnitude_bin in steps:
            bins = self.space[name][0](NUM_BINS, h, w)
            magnitudes.append(0.0 if bins is None else float(bins[magnitude_bin]))
        return PolicyTable(
            names=names,
            op=torch.tensor([names.index(name) for name, _, _ in steps], device=device),
            probability=torch.tensor([probability for _, probability, _ in steps], device=device),
            magnitude=torch.tensor(magnitudes, dtype=torch.float64, device=device),
            signed=torch.tensor([self.space[name][1] for name, _, _ in steps], device=device),
        )

    def __call__(self, images: Tensor, generator: torch.Generator) -> Tensor:
        n, _, h, w = images.shape
        draw = {"generator": generator, "device": generator.device}
        chosen = torch.randint(0, len(self.policies), (n,), **draw).to(images.device)
        fires = torch.rand(n, 2, **draw).to(images.device)
        negative = (torch.rand(n, 2, **draw) <= 0.5).to(images.device)
        out = images
        for position, table in enumerate(self.tables(images.device, h, w)):
            op = table.op[chosen]
            applied = fires[:, position] <= table.probability[chosen]
            sign = torch.where(table.signed[chosen] & negative[:, position], -1.0, 1.0).double()
            magnitude = sign * table.magnitude[chosen]
            doing = {name: applied & (op == k) for k, name in enumerate(table.names)}
            geometric = {name: mask for name, mask in doing.items() if name in GEOMETRIC}
            if geometric:
                moved = geometric_operation(out, geometric, magnitude, self.fill)
                out = torch.where(_per_image(torch.stack(list(geometric.values())).any(0)), moved, out)
            for name, mask in doing.items():
                if name not in GEOMETRIC:
                    out = torch.where(_per_image(mask), colour_operation(name, out, magnitude), out)
        return out
