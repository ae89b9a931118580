"""Training arms of the deep-network benchmark: the spiking network, its ReLU twin, progressive accuracy.

The twin has the same layers and weights' initialisation and is trained the same way (online,
minibatch 1, the same shuffling, augmentation, cosine schedule and sparse update kernels) on the
count maps of the same (augmented) event streams, with real-valued ReLU activations in place of
spike counts (``streamsnn.snn.relu``); only the spikes differ.
"""

from __future__ import annotations

import time

import numpy as np

from streamsnn import defaults

#: The augmentation `streamsnn train` uses.
AUGMENT = defaults.AUGMENT


def load_data(nmnist, synth_dir=None, mnist=None, n_synth: int = 9900, quiet: bool = True):
    """(real train, real test, synthetic) as SampleArrays of the N-MNIST input grid.

    Synthetic samples come from ``synth_dir`` (a folder written by ``streamsnn synth``) when given,
    else they are recorded here by the saccade camera from MNIST test images 101 on.
    """
    from streamsnn.learn.training import load_split
    from streamsnn.snn import SpikingNetwork

    probe = SpikingNetwork(arch="dense:1")
    real = load_split(nmnist, "train", probe, quiet=quiet)
    test = load_split(nmnist, "test", probe, quiet=quiet)
    if n_synth <= 0:
        return real, test, None
    if synth_dir is not None:
        syn = load_split(synth_dir, "train", probe, limit=None, quiet=quiet).subset(n_synth)
    else:
        from .bench_sim2real import synthetic_arrays

        syn = synthetic_arrays(mnist, 101, n_synth, probe)
    return real, test, syn


def train_snn(arch: str, train, test, *, epochs: int, seed: int, **settings) -> dict:
    """Train a fresh SpikingNetwork as `streamsnn train` does; accuracy on ``test`` and wall time.

    ``settings``: SpikingNetwork arguments (lr, lr_out, activity, ...) other than the defaults.
    """
    from streamsnn.learn.training import Augment, evaluate, train_epoch
    from streamsnn.snn import SpikingNetwork

    net = SpikingNetwork(arch=arch, seed=seed, **settings)
    aug = Augment(**AUGMENT)
    t0 = time.perf_counter()
    rates = []
    for ep in range(epochs):
        r = train_epoch(net, train, epoch=ep, epochs=epochs, seed=seed, augment=aug, quiet=True)
        rates.append(r["events_per_s"])
    secs = time.perf_counter() - t0
    ev = evaluate(net, test)
    return {"net": net, "accuracy": ev["accuracy"], "seconds": secs, "per_class": ev["per_class"],
            "learn_events_per_s": float(np.median(rates))}


def train_twin(arch: str, train, test, *, epochs: int, seed: int, **settings) -> dict:
    """The ReLU twin: same layers, initialisation and schedule, trained on count maps of the same streams."""
    from streamsnn.learn.training import Augment, lr_schedule
    from streamsnn.snn import SpikingNetwork, relu

    net = SpikingNetwork(arch=arch, seed=seed, **settings)
    n_in = net.sizes[0]
    aug = Augment(**AUGMENT)
    t0 = time.perf_counter()
    for ep in range(epochs):
        rng = np.random.default_rng([seed, ep])  # the same order and augmentation draws as train_epoch
        scale = lr_schedule(ep, epochs)
        for k in rng.permutation(len(train)):
            idx, _ = aug(train.idx[k], train.t[k], net.input_shape, rng)
            relu.learn(net, np.bincount(idx, minlength=n_in).astype(np.float32), int(train.labels[k]), scale)
    secs = time.perf_counter() - t0
    pred = [relu.predict(net, np.bincount(i, minlength=n_in)) for i in test.idx]
    return {"net": net, "accuracy": float(np.mean(np.asarray(pred) == test.labels)), "seconds": secs}


def progressive(arch: str, stream, *, seed: int) -> dict:
    """One pass over a stream in file order from random weights, test-then-train, no augmentation."""
    from streamsnn.snn import SpikingNetwork

    net = SpikingNetwork(arch=arch, seed=seed)
    net.warm_up()
    t0, c0 = time.perf_counter(), time.thread_time()
    for k in range(len(stream)):
        net.learn_indices(stream.idx[k], int(stream.labels[k]), stream.t[k])
    secs, cpu = time.perf_counter() - t0, time.thread_time() - c0
    return {"accuracy": net.progressive_accuracy, "events_per_s": stream.n_events / secs,
            "events_per_cpu_s": stream.n_events / max(cpu, 1e-9)}


def validation_split(real, n: int = 100):
    """(train, validation): every tenth real training sample (positions 9, 19, ...) held out, fixed."""
    val = np.arange(9, len(real), max(1, len(real) // n))[:n]
    rest = np.setdiff1d(np.arange(len(real)), val)
    return real.pick(rest), real.pick(val)


def mean_sd(xs) -> tuple[float, float]:
    xs = np.asarray(xs, float)
    return float(xs.mean()), float(xs.std(ddof=1)) if len(xs) > 1 else 0.0
