"""Mixtures of data sources (`--data synthetic+coco:DIR --data-weights 1,2`): the sampler's
exact proportions per epoch, the validation part, and the config / CLI checks."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from okdhp_edge.data import DatasetError, build_dataset
from okdhp_edge.data.mixture import MixedDataset, mixture_counts, split_sources
from okdhp_edge.skeleton import COCO17
from okdhp_edge.spec import InputSpec

SPEC = InputSpec(width=96, height=128)


def test_counts_follow_the_weights_exactly():
    assert mixture_counts(10, [1, 2]).tolist() == [3, 7]
    assert mixture_counts(9, [1, 2]).tolist() == [3, 6]
    assert (
        mixture_counts(7, [1, 1, 1]).sum() == 7
        and max(mixture_counts(7, [1, 1, 1])) - min(mixture_counts(7, [1, 1, 1])) == 1
    )
    assert split_sources("synthetic+coco:/d") == ["synthetic", "coco:/d"]
    with pytest.raises(DatasetError, match="empty part"):
        split_sources("synthetic+")


@pytest.fixture(scope="module")
def roots(tmp_path_factory) -> tuple[str, str]:
    a, b = tmp_path_factory.mktemp("a"), tmp_path_factory.mktemp("b")
    for root, seed in ((a, 1), (b, 2)):  # two small synthetic sets, different people
        for split in ("train", "val"):
            build_dataset(f"synthetic:{root}", split, SPEC, COCO17, synthetic_images=3, data_seed=seed)
    return f"synthetic:{a}", f"synthetic:{b}"


def test_an_epoch_draws_each_part_in_proportion(roots):
    mixed = build_dataset(f"{roots[0]}+{roots[1]}", "train", SPEC, COCO17, train=True, weights=[1, 3], seed=5)
    assert isinstance(mixed, MixedDataset)
    sizes = [len(p) for p in mixed.parts]
    total = sum(sizes)
    assert len(mixed) == total
    for epoch in range(3):
        mixed.set_epoch(epoch)
        parts = Counter(mixed.parts_of_epoch().tolist())
        assert [parts[0], parts[1]] == mixture_counts(total, [1, 3]).tolist()
        for k, part in enumerate(
            mixed.parts
        ):  # a part drawn more often than it has people cycles through all of them evenly
            used = Counter(int(j) for kk, j in mixed._table if kk == k)
            assert max(used.values()) - min(used.get(i, 0) for i in range(len(part))) <= 1
    first = mixed._table.copy()
    mixed.set_epoch(1)
    assert not np.array_equal(first, mixed._table)  # a new epoch, a new draw
    mixed.set_epoch(2)
    np.testing.assert_array_equal(first, mixed._table)  # the same epoch, the same draw (workers, resume)
    k, j = mixed._table[0]
    item, direct = mixed[0], mixed.parts[int(k)][int(j)]
    np.testing.assert_array_equal(item["image"], direct["image"])
    gt = mixed.ground_truth()
    assert len(gt["joints"]) == total


def test_validation_is_one_named_part(roots):
    source = f"{roots[0]}+{roots[1]}"
    last = build_dataset(source, "val", SPEC, COCO17)
    assert last.source == f"{roots[1]} [val]"
    assert build_dataset(source, "val", SPEC, COCO17, val_source=roots[0]).source == f"{roots[0]} [val]"
    with pytest.raises(DatasetError, match="not one of the data sources"):
        build_dataset(source, "val", SPEC, COCO17, val_source="coco:/elsewhere")
    with pytest.raises(DatasetError, match="1 data weights for 2 data sources"):
        build_dataset(source, "train", SPEC, COCO17, weights=[1])
    with pytest.raises(DatasetError, match="positive"):
        build_dataset(source, "train", SPEC, COCO17, weights=[1, 0])


def test_config_and_command_line_take_mixtures():
    from okdhp_edge.train.cli import build_parser, overrides_from_args
    from okdhp_edge.train.config import ConfigError, load_config

    args = build_parser().parse_args(["--data", "synthetic+coco:/d", "--data-weights", "1,2"])
    cfg = load_config(None, None, overrides_from_args(args))
    assert cfg.data.source == "synthetic+coco:/d" and cfg.data.weights == [1.0, 2.0]
    with pytest.raises(ConfigError, match="data.weights"):
        load_config(None, None, {"data": {"source": "synthetic+coco:/d", "weights": [1.0]}})
    with pytest.raises(ConfigError, match="data.source"):
        load_config(None, None, {"data": {"source": "synthetic+cocoa"}})
    with pytest.raises(ConfigError, match="data.val_source"):
        load_config(None, None, {"data": {"source": "synthetic+coco:/d", "val_source": "mpii:/x"}})
    with pytest.raises(ConfigError, match="--data-weights"):
        overrides_from_args(build_parser().parse_args(["--data-weights", "1,x"]))
