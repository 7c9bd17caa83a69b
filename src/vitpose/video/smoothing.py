"""The One Euro filter (Casiez, Roussel and Vogel, CHI 2012): an adaptive low-pass filter for noisy signals.

A first-order low-pass filter whose cut-off frequency rises with the signal's speed: a still signal is smoothed hard
(cut-off ``min_cutoff``), a fast one is followed with little lag (cut-off ``min_cutoff + beta * |speed|``). The speed
itself is low-passed at ``d_cutoff``. For a sample ``x`` at time ``t`` (seconds) after the previous one at ``t0``::

    dt      = t - t0
    alpha(f) = r / (r + 1)  with  r = 2 * pi * f * dt         (the smoothing factor of a cut-off f, in Hz)
    dx      = (x - x_prev_hat) / dt
    dx_hat  = alpha(d_cutoff) * dx + (1 - alpha(d_cutoff)) * dx_hat_prev
    f       = min_cutoff + beta * |dx_hat|
    x_hat   = alpha(f) * x + (1 - alpha(f)) * x_prev_hat

Every element of the array is filtered on its own (for keypoints (K, 2): x and y of each keypoint separately), so
``beta`` is in units of 1 / (signal unit per second): with pixels, the default ``beta = 0.007`` raises the cut-off by
0.7 Hz for a keypoint moving at 100 px/s.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from vitpose.errors import VitPoseError

__all__ = ["OneEuroFilter"]


class OneEuroFilter:
    """One Euro filter over an array of any shape, all elements at once (each filtered independently).

    Args:
        min_cutoff: cut-off frequency (Hz) for a still signal; lower smooths more (and lags more).
        beta: speed coefficient; higher follows fast motion with less lag (and lets more jitter through).
        d_cutoff: cut-off frequency (Hz) of the speed estimate.

    Call it with each new sample and its time stamp in seconds (strictly increasing); it returns the filtered sample,
    a new float64 array of the same shape. The first sample is returned unchanged.

    >>> f = OneEuroFilter(min_cutoff=1.0, beta=0.007)
    >>> smoothed = [f(keypoints, t) for keypoints, t in samples]   # keypoints (K, 2), t in seconds
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.007, d_cutoff: float = 1.0) -> None:
        checks = (("min_cutoff", min_cutoff, True), ("beta", beta, False), ("d_cutoff", d_cutoff, True))
        for name, value, positive in checks:
            if not math.isfinite(value) or value < 0 or (positive and value == 0):
                need = "> 0" if positive else ">= 0"
                raise VitPoseError(f"One Euro filter: {name} must be finite and {need}, got {value}")
        self.min_cutoff = float(min_cutoff)
        self.beta = float(beta)
        self.d_cutoff = float(d_cutoff)
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: float | None = None

    @staticmethod
    def _alpha(cutoff: float | np.ndarray, dt: float) -> float | np.ndarray:
        r = 2.0 * math.pi * cutoff * dt
        return r / (r + 1.0)

    def reset(self) -> None:
        """Forget the past: the next sample is returned unchanged."""
        self._x = self._dx = None
        self._t = None

    def __call__(self, x: ArrayLike, t: float) -> np.ndarray:
        """Filter one sample.

        Args:
            x: the sample, any shape (the same at every call).
            t: its time in seconds, greater than the previous call's.

        Returns:
            the filtered sample, float64, shape of ``x``.
        """
        value = np.asarray(x, dtype=np.float64)
        t = float(t)
        if self._x is None or self._t is None or self._dx is None:
            self._x, self._dx, self._t = value.copy(), np.zeros_like(value), t
            return value.copy()
        if value.shape != self._x.shape:
            raise VitPoseError(f"One Euro filter: sample of shape {value.shape}, previous samples {self._x.shape}")
        dt = t - self._t
        if not dt > 0:
            raise VitPoseError(f"One Euro filter: time stamps must increase, got {t} after {self._t}")
        speed = (value - self._x) / dt
        a_d = self._alpha(self.d_cutoff, dt)
        self._dx = a_d * speed + (1.0 - a_d) * self._dx
        a = self._alpha(self.min_cutoff + self.beta * np.abs(self._dx), dt)
        self._x = a * value + (1.0 - a) * self._x
        self._t = t
        return self._x.copy()
