"""The FAU ensemble as a model of its own: the OKDHP training net with one output.

After an OKDHP run the ensemble (every branch's final heatmaps weighted per joint by the FAU) is
the strongest pose model the user owns: too costly to deploy, the right teacher for labelling
footage. As an `EnsembleNet` it keeps a student's contract, crops in and (N, K, h, w) heatmaps
out, so the model files, export and the runtime take it as they take a student.
"""

from __future__ import annotations

import torch

from ..spec import InputSpec, ModelSpec
from .cost import count_cost, meta_device
from .okdhp import OKDHPNet, OKDHPSpec
from .presets import Preset
from .student import compression_rate

__all__ = ["EnsembleNet", "describe_ensemble"]


class EnsembleNet(OKDHPNet):
    """OKDHPNet whose forward returns only the ensemble heatmaps; its state_dict is OKDHPNet's,
    so a training checkpoint's weights load into it as they are."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(x)["ensemble"]


def describe_ensemble(preset: Preset, net_spec: OKDHPSpec | None = None, provenance: dict | None = None) -> ModelSpec:
    """The ModelSpec of the ensemble: the whole net's architecture, the preset's geometry, its cost.

    Its compression rate is above 1: the ensemble costs more than the largest student.
    """
    net_spec = net_spec or preset.network_spec()
    with meta_device:
        cost = count_cost(EnsembleNet(net_spec), preset.input_size)
    return ModelSpec(
        name=f"{preset.name}-ensemble-" + "+".join(map(str, net_spec.branches)),
        arch=net_spec.ensemble_arch(),
        skeleton=preset.get_skeleton(),
        input=InputSpec(width=preset.input_size[0], height=preset.input_size[1]),
        heatmap_stride=net_spec.stride,
        compression_rate=compression_rate(preset, cost.macs),
        params=cost.params,
        macs=cost.macs,
        provenance={"preset": preset.name, **(provenance or {})},
    )
