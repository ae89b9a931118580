"""The streaming pipeline, one job per module: `loop` (Pipeline: source -> windows -> network -> sinks),
`segment` (windows), `decide` (a window's decision), `runtime` (bounded queues), `outputs` (each sink
isolated), `watchdog` (systemd's watchdog from progress), `feedback` (which feedback may teach), `teacher`
(feedback teaching), `growth` (new classes), `metrics`, `checkpoints`, `settings` (PipelineSettings), and
`stages` (the Source, Sink and Classifier protocols)."""

from ..errors import StageFailed
from .checkpoints import Checkpoints
from .decide import Decider
from .feedback import Recent
from .growth import Growth
from .loop import Pipeline
from .metrics import Counters, Metrics
from .runtime import POLICIES, BoundedQueue
from .settings import PipelineSettings
from .teacher import Teacher

__all__ = ["POLICIES", "BoundedQueue", "Checkpoints", "Counters", "Decider", "Growth", "Metrics", "Pipeline",
           "PipelineSettings", "Recent", "StageFailed", "Teacher"]
