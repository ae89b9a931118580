"""bench_fewshot's synthetic-camera arms: a class never seen taught by examples of it only, scored on unseen samples.

- `font`: the digits of `streamsnn synth --font` (digits rendered from a font with a random pose and stroke, recorded
  by the simulated saccade camera): a camera and a handwriting the base models never saw. The base models are the
  real arm's (digits 0-8, cached by bench_incremental); the 9s of one font set are taught, a second font set
  (another seed) is scored: the new class on its 9s, the old classes on its 0-8. The first set's 0-8 are the live
  stretch (decided unlabelled before teaching, never scored).
- `gestures`: `streamsnn synth --gestures` (ten motions of a shape before the same simulated pixels). A base model
  per seed is trained by `streamsnn train --learning counts --choose off` on nine gestures (the tenth's folders
  left out); the tenth, `NEW_GESTURE`, the reverse of an old gesture (`circle_cw`), is then taught from the
  training samples of a second gesture set (another seed, `GESTURES_TEACH` per class, only NEW_GESTURE used) and
  every gesture is scored on the first set's test split. `train` fills the rehearsal memory itself. The second set's
  other gestures are the live stretch.

Teaching is bench_fewshot.teach: decisions and feedback through `Pipeline.apply_feedback`, the daemon's path.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

FONT_TEACH, FONT_SCORE = 1500, 1000   # font samples generated for teaching (only the 9s are used) and for scoring
GESTURES_PER_CLASS, GESTURES_TEST, GESTURES_TEACH = 60, 30, 110
NEW_GESTURE = "circle_ccw"


def synth(argv: list[str]) -> None:
    """`streamsnn synth ARGV --quiet` in a subprocess (its own progress and numba compiles stay out of the log)."""
    subprocess.run([sys.executable, "-m", "streamsnn", "synth", *argv, "--quiet"], check=True)


def font_sets(tmp: Path, quick: bool):
    """(the font 9s to teach as EventBatches, the scoring set as SampleArrays with labels 0-9, the other digits of
    the teaching set as EventBatches: the live stretch)."""
    from streamsnn.io.dataset import open_dataset
    from streamsnn.learn.training import load_split
    from streamsnn.snn import SpikingNetwork

    teach_dir, score_dir = tmp / "font-teach", tmp / "font-score"
    n_teach, n_score = (400, 300) if quick else (FONT_TEACH, FONT_SCORE)
    synth(["--font", "--count", str(n_teach), "--seed", "101", "--out", str(teach_dir)])
    synth(["--font", "--count", str(n_score), "--seed", "202", "--out", str(score_dir)])
    samples = open_dataset(teach_dir).split("train").samples
    news = [s.load() for s in samples if s.label == 9]
    live = [s.load() for s in samples if s.label != 9]
    return news, load_split(score_dir, "train", SpikingNetwork(arch="dense:1"), quiet=True), live


def gesture_folder(tmp: Path, quick: bool) -> tuple[Path, Path, Path]:
    """(all ten gestures, the same folder without NEW_GESTURE: class folders linked, not copied; the teaching set)."""
    full, base, teach = tmp / "gestures", tmp / "gestures-9", tmp / "gestures-teach"
    per = 12 if quick else GESTURES_PER_CLASS
    synth(["--gestures", "--count", str(per), "--test-count", str(per // 2 if quick else GESTURES_TEST),
           "--seed", "303", "--out", str(full)])
    synth(["--gestures", "--count", str(per if quick else GESTURES_TEACH), "--split", "train", "--seed", "404",
           "--out", str(teach)])
    for split in ("Train", "Test"):
        (base / split).mkdir(parents=True)
        for d in sorted((full / split).iterdir()):
            if d.is_dir() and d.name != NEW_GESTURE:
                (base / split / d.name).symlink_to(d.resolve())
    return full, base, teach


def gesture_bases(base_dir: Path, tmp: Path, seeds, quick: bool) -> list[Path]:
    """A base model per seed: `streamsnn train` on the nine gestures (counts, no search; 2 epochs with --quick)."""
    from .bench_robust import train

    out = []
    for seed in seeds:
        model = tmp / f"gestures-base-{seed}.npz"
        r = train(base_dir, seed, model, ["--learning", "counts", "--choose", "off", "--quiet"]
                  + (["--epochs", "2"] if quick else []))
        if not model.exists():
            raise RuntimeError(f"gesture base model not trained: {r['error'] or r['exception']}")
        out.append(model)
    return out


def gesture_sets(full: Path, teach: Path, base_model: Path):
    """(the NEW_GESTURE training samples of ``teach`` as EventBatches, the test split of all ten gestures as
    SampleArrays whose labels index the base model's classes followed by NEW_GESTURE, as teaching orders them, the
    other gestures of ``teach`` as EventBatches: the live stretch)."""
    from streamsnn.io.dataset import open_dataset
    from streamsnn.learn.training import load_split
    from streamsnn.snn import SpikingNetwork

    mapper = SpikingNetwork.load(base_model)
    mapper.add_class(NEW_GESTURE)
    ds = open_dataset(teach)
    named = [(s, s.label_name or ds.classes[int(s.label)]) for s in ds.split("train").samples]
    news = [s.load() for s, name in named if name == NEW_GESTURE]
    live = [s.load() for s, name in named if name != NEW_GESTURE]
    return news, load_split(full, "test", mapper, quiet=True), live


def new_index_scores(net, data, new: int) -> tuple[float, float]:
    """(accuracy on class ``new``, accuracy on the others) of ``net`` on ``data``."""
    pred = np.asarray([net.predict_indices(i, t).label for i, t in zip(data.idx, data.t)])
    is_new = data.labels == new
    return float(np.mean(pred[is_new] == new)), float(np.mean(pred[~is_new] == data.labels[~is_new]))
