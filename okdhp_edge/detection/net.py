"""A small person detector: a depthwise-separable backbone to stride 32, a top-down neck back to
stride 4, and CenterNet heads (a person-centre heatmap, the box size and the centre's sub-cell
offset at every cell).

Centres at stride 4 keep people of 15-20 input pixels apart, which the far end of a street scene
needs; the backbone's stride 32 gives the context of a whole standing body, and `context` dilated
blocks at strides 16 and 32 widen the view to people near the camera, who fill the frame (without
them such people are learnt several times more slowly: docs/runtime.md, "Training the detector").
`V8Export` turns the heads into the layout YOLOv8 exports use, so the runtime's YOLO decoder runs the file unchanged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["DetSpec", "PersonDetNet", "V8Export"]

HEAD_STRIDE = 4


@dataclass
class DetSpec:
    """Shape of the detector: the fixed input (width, height) and the widths of each stage."""

    width: int = 384
    height: int = 288
    stages: tuple[int, ...] = (24, 32, 64, 96, 128)  # stride 2, 4, 8, 16, 32
    neck: int = 48
    context: int = 0  # dilated residual blocks (dilation 1, 2, 3, ...) added at stride 32; half as many at 16

    def __post_init__(self) -> None:
        self.stages = tuple(int(c) for c in self.stages)
        if len(self.stages) != 5:
            raise ValueError(f"DetSpec.stages: one width per stride 2, 4, 8, 16, 32, got {self.stages}")
        if self.width % 32 or self.height % 32:
            raise ValueError(f"DetSpec: input {self.width}x{self.height} must be a multiple of 32 on both sides")

    @property
    def stride(self) -> int:
        return HEAD_STRIDE

    def to_dict(self) -> dict:
        return {**asdict(self), "stages": list(self.stages)}


def _conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, dilation * (k // 2), dilation=dilation, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class SeparableBlock(nn.Module):
    """Depthwise 3x3 + pointwise 1x1, residual when the shape is kept."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.depthwise = _conv_bn(cin, cin, 3, stride, groups=cin)
        self.pointwise = _conv_bn(cin, cout, 1)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.pointwise(self.depthwise(x))
        return out + x if self.residual else out


class DilatedBlock(nn.Module):
    """Residual depthwise 3x3 with a dilation, then pointwise: a wider view at the same cost."""

    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        self.depthwise = _conv_bn(channels, channels, 3, groups=channels, dilation=dilation)
        self.pointwise = _conv_bn(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pointwise(self.depthwise(x))


class PersonDetNet(nn.Module):
    """`forward(x)` on RGB in [0, 1], (N, 3, H, W) -> (heatmap logits (N, 1, h, w), size (N, 2, h, w),
    offset (N, 2, h, w)) at stride 4. Size is log(box side / stride); offset is in cells."""

    def __init__(self, spec: DetSpec) -> None:
        super().__init__()
        self.spec = spec
        c = spec.stages
        self.stem = _conv_bn(3, c[0], 3, 2)
        self.down = nn.ModuleList(
            nn.Sequential(SeparableBlock(c[i], c[i + 1], 2), SeparableBlock(c[i + 1], c[i + 1])) for i in range(4)
        )
        for stage, blocks in ((self.down[3], spec.context), (self.down[2], spec.context // 2)):
            stage.extend(DilatedBlock(stage[-1].pointwise[0].out_channels, 1 + i) for i in range(blocks))
        self.lateral = nn.ModuleList(_conv_bn(ci, spec.neck, 1) for ci in c[1:])
        self.smooth = SeparableBlock(spec.neck, spec.neck)
        self.heatmap = nn.Sequential(SeparableBlock(spec.neck, spec.neck), nn.Conv2d(spec.neck, 1, 1))
        self.size = nn.Sequential(SeparableBlock(spec.neck, spec.neck), nn.Conv2d(spec.neck, 2, 1))
        self.offset = nn.Conv2d(spec.neck, 2, 1)
        nn.init.constant_(self.heatmap[-1].bias, -4.6)  # a prior of 1 % centres: the focal loss starts stable
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.stem((x - self.mean) / self.std)
        features = []
        for stage in self.down:
            x = stage(x)
            features.append(x)
        top = self.lateral[-1](features[-1])
        for feature, lateral in zip(features[-2::-1], list(self.lateral)[-2::-1]):
            top = lateral(feature) + F.interpolate(top, size=feature.shape[-2:], mode="nearest")
        top = self.smooth(top)
        return self.heatmap(top), self.size(top), self.offset(top)


class V8Export(nn.Module):
    """The detector with its decoding inside, in YOLOv8's output layout: (N, 5, A) rows of
    cx, cy, w, h (input pixels) and the person score, one per stride-4 cell. A 3x3 max-pool keeps
    only local peaks (CenterNet's NMS), so the runtime's box NMS has little left to do."""

    def __init__(self, net: PersonDetNet) -> None:
        super().__init__()
        self.net = net
        h, w = net.spec.height // HEAD_STRIDE, net.spec.width // HEAD_STRIDE
        ys, xs = torch.meshgrid(
            torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij"
        )
        self.register_buffer("grid", torch.stack([xs, ys]).view(1, 2, h, w), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits, size, offset = self.net(x)
        score = torch.sigmoid(logits)
        peak = (F.max_pool2d(score, 3, 1, 1) == score).to(score.dtype)
        centre = (self.grid + offset) * HEAD_STRIDE
        box = torch.exp(size.clamp(max=8.0)) * HEAD_STRIDE
        rows = torch.cat([centre, box, score * peak], dim=1)
        return rows.flatten(2)
