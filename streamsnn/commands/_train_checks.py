"""`streamsnn train`'s checks that name, in one WARNING line each, a result the user must not trust as it is."""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger("streamsnn.train")


def blind(train, net, args) -> None:
    """One WARNING line for each class most of whose training samples have no event inside the input region (the
    model would learn "nothing in view" as that class)."""
    empty = np.array([len(i) == 0 for i in train.idx])
    for k, name in enumerate(net.classes):
        mine = train.labels == k
        if mine.sum() and empty[mine].mean() >= 0.5:
            log.warning(
                "class %s: %d of its %d training samples have no event inside the input region %s; the model can only "
                "learn it as \"nothing in view\": %s", name, int(empty[mine].sum()), int(mine.sum()),
                "x {} y {} {}x{}".format(*net.input_map.roi), "check --roi" if args.roi else "give --roi to cover it")


def at_chance(epochs: list[dict], net) -> None:
    """One WARNING line when the model saved is no better than chance on the test split and its activity ran away
    while it trained (revivals): a hot pixel, or rates too high for the data, and exit 0 said nothing of it."""
    last = epochs[-1] if epochs else {}
    revivals = sum(e.get("revivals", 0) for e in epochs)
    chance = 1.0 / max(2, len(net.classes))
    if last.get("test_accuracy") is not None and last["test_accuracy"] <= chance + 0.02 and revivals:
        log.warning("the model saved is at chance on the test split (%.1f%%, chance %.1f%%) after %d revival(s) while "
                    "it trained: its activity kept running away; try lower --lr and --lr-out, and check the data for "
                    "hot pixels (one pixel with far more events than the rest)", 100 * last["test_accuracy"],
                    100 * chance, revivals)
