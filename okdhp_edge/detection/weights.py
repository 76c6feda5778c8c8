"""A trained person detector on disk: safetensors weights (never pickle) and a JSON record beside
them. Training writes it, export reads it; neither imports the other for it."""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_file, save_file

from ..spec import write_json_atomic
from .net import DetSpec, PersonDetNet

__all__ = ["load_detector", "save_detector"]


def save_detector(net: PersonDetNet, path: Path, record: dict) -> Path:
    """Weights as safetensors and everything about them as JSON beside it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(
        {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()},
        str(tmp),
        metadata={"okdhp_detector": json.dumps(record["spec"])},
    )
    tmp.replace(path)
    write_json_atomic(path.with_suffix(".json"), record)
    return path


def load_detector(path: str | Path) -> tuple[PersonDetNet, dict]:
    """A saved detector and its JSON record."""
    path = Path(path)
    record = json.loads(path.with_suffix(".json").read_text())
    net = PersonDetNet(DetSpec(**record["spec"]))
    net.load_state_dict(load_file(str(path)))
    return net.eval(), record
