"""The streaming pipeline, one job per module: `loop` (Pipeline: source -> windows -> network -> sinks),
`teacher` (feedback), `growth` (new classes), `metrics`, `checkpoints`, and `settings` (PipelineSettings)."""

from ..decide import Decider
from ..errors import StageFailed
from ..feedback import Recent
from ..runtime import POLICIES, BoundedQueue
from .checkpoints import Checkpoints
from .growth import Growth
from .loop import Pipeline
from .metrics import Counters, Metrics
from .settings import PipelineSettings
from .teacher import Teacher

__all__ = ["POLICIES", "BoundedQueue", "Checkpoints", "Counters", "Decider", "Growth", "Metrics", "Pipeline",
           "PipelineSettings", "Recent", "StageFailed", "Teacher"]
