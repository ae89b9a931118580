"""Synthetic saccade camera: digit images (MNIST, PNG, font) -> N-MNIST-like DVS events."""

from .camera import SaccadeCamera, SaccadeParams

__all__ = ["SaccadeCamera", "SaccadeParams"]
