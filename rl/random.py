"""Exploration noise processes: Ornstein-Uhlenbeck and Gaussian white noise, seeded and annealed."""

from __future__ import annotations

from typing import Any

import numpy as np

from rl.util import check_int, check_number

__all__ = ["AnnealedGaussianProcess", "GaussianWhiteNoiseProcess", "OrnsteinUhlenbeckProcess", "RandomProcess"]


class RandomProcess:
    """Base class of noise processes: `sample()` returns one noise vector, `reset_states()` restarts."""

    size: int

    def sample(self) -> np.ndarray:
        """Returns the next noise sample, shape `(size,)`."""
        raise NotImplementedError

    def reset_states(self) -> None:
        """Restarts the process (called at the start of each episode)."""

    def get_config(self) -> dict[str, Any]:
        """Returns the constructor arguments."""
        return {}

    def get_state(self) -> dict[str, Any]:
        """Returns the process's state as JSON-compatible values (for checkpoints)."""
        return {}

    def set_state(self, state: dict[str, Any]) -> None:
        """Restores what `get_state` returned."""


class AnnealedGaussianProcess(RandomProcess):
    """A process whose noise scale anneals linearly from `sigma` to `sigma_min`.

    `current_sigma = max(sigma_min, sigma - (sigma - sigma_min) * n_steps / n_steps_annealing)`,
    where `n_steps` counts samples drawn. With `sigma_min=None` the scale stays at `sigma`.

    Args:
        mu: mean of the noise.
        sigma: initial scale, >= 0.
        sigma_min: final scale, in `[0, sigma]`, or `None` for no annealing.
        n_steps_annealing: number of samples over which the scale anneals, >= 1.
        size: dimension of each sample (the number of actions), >= 1.
        seed: seed of the process's own generator. Defaults to `None` (fresh entropy).
    """

    def __init__(
        self,
        mu: float,
        sigma: float,
        sigma_min: float | None,
        n_steps_annealing: int = 1000,
        size: int = 1,
        seed: int | None = None,
    ):
        self.mu = check_number("mu", mu)
        self.sigma = check_number("sigma", sigma, low=0.0)
        self.sigma_min = None if sigma_min is None else check_number("sigma_min", sigma_min, low=0.0, high=self.sigma)
        self.n_steps_annealing = check_int("n_steps_annealing", n_steps_annealing, minimum=1)
        self.size = check_int("size", size, minimum=1)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.n_steps = 0
        if self.sigma_min is None:
            self._slope, self._floor = 0.0, self.sigma
        else:
            self._slope = -(self.sigma - self.sigma_min) / self.n_steps_annealing
            self._floor = self.sigma_min

    @property
    def current_sigma(self) -> float:
        """The noise scale for the next sample."""
        return max(self._floor, self._slope * self.n_steps + self.sigma)

    def get_config(self) -> dict[str, Any]:
        return {
            "mu": self.mu,
            "sigma": self.sigma,
            "sigma_min": self.sigma_min,
            "n_steps_annealing": self.n_steps_annealing,
            "size": self.size,
            "seed": self.seed,
        }

    def get_state(self) -> dict[str, Any]:
        return {"n_steps": self.n_steps, "rng": self.rng.bit_generator.state}

    def set_state(self, state: dict[str, Any]) -> None:
        self.n_steps = int(state["n_steps"])
        self.rng.bit_generator.state = state["rng"]


class GaussianWhiteNoiseProcess(AnnealedGaussianProcess):
    """Independent Gaussian noise: `mu + current_sigma * N(0, 1)` at every step.

    Args:
        mu: mean. Defaults to `0.0`.
        sigma: initial standard deviation. Defaults to `1.0`.
        sigma_min: final standard deviation, or `None` for none. Defaults to `None`.
        n_steps_annealing: samples over which `sigma` anneals to `sigma_min`. Defaults to `1000`.
        size: dimension of each sample. Defaults to `1`.
        seed: generator seed. Defaults to `None`.
    """

    def __init__(
        self,
        mu: float = 0.0,
        sigma: float = 1.0,
        sigma_min: float | None = None,
        n_steps_annealing: int = 1000,
        size: int = 1,
        seed: int | None = None,
    ):
        super().__init__(mu, sigma, sigma_min, n_steps_annealing, size, seed)

    def sample(self) -> np.ndarray:
        sample = self.mu + self.current_sigma * self.rng.standard_normal(self.size)
        self.n_steps += 1
        return sample


class OrnsteinUhlenbeckProcess(AnnealedGaussianProcess):
    """Temporally correlated noise, the classic choice for DDPG.

    `x_t = x_{t-1} + theta * (mu - x_{t-1}) * dt + current_sigma * sqrt(dt) * N(0, 1)`,
    restarting from `x0` (or zeros) at each `reset_states()`. The stationary standard deviation is
    `sigma / sqrt(2 * theta)`.

    The positional order is keras-rl's: `(theta, mu, sigma, dt, size, sigma_min,
    n_steps_annealing)`; `x0` and `seed` come after.

    Args:
        theta: mean-reversion rate, > 0.
        mu: long-run mean. Defaults to `0.0`.
        sigma: initial noise scale. Defaults to `1.0`.
        dt: time step. Defaults to `1e-2`.
        size: dimension of each sample (the number of actions). Defaults to `1`.
        sigma_min: final noise scale, or `None` for no annealing. Defaults to `None`.
        n_steps_annealing: samples over which `sigma` anneals to `sigma_min`. Defaults to `1000`.
        x0: starting value, or `None` for zeros. Defaults to `None`.
        seed: generator seed. Defaults to `None`.

    Example:

    >>> noise = OrnsteinUhlenbeckProcess(theta=0.15, mu=0.0, sigma=0.3, size=1, seed=0)
    >>> noise.sample().shape
    (1,)
    """

    def __init__(
        self,
        theta: float,
        mu: float = 0.0,
        sigma: float = 1.0,
        dt: float = 1e-2,
        size: int = 1,
        sigma_min: float | None = None,
        n_steps_annealing: int = 1000,
        x0: Any = None,
        seed: int | None = None,
    ):
        super().__init__(mu, sigma, sigma_min, n_steps_annealing, size, seed)
        self.theta = check_number("theta", theta, low=0.0, low_inclusive=False)
        self.dt = check_number("dt", dt, low=0.0, low_inclusive=False)
        if x0 is not None:
            x0 = np.broadcast_to(np.asarray(x0, dtype=np.float64), (self.size,)).copy()
        self.x0 = x0
        self._sqrt_dt = float(np.sqrt(self.dt))
        self.reset_states()

    def sample(self) -> np.ndarray:
        # x + theta * (mu - x) * dt + sigma * sqrt(dt) * N(0, 1), the scalar factors folded first.
        theta_dt = self.theta * self.dt
        x = (
            self.x_prev * (1.0 - theta_dt)
            + theta_dt * self.mu
            + (self.current_sigma * self._sqrt_dt) * self.rng.standard_normal(self.size)
        )
        self.x_prev = x
        self.n_steps += 1
        return x

    def reset_states(self) -> None:
        self.x_prev = np.zeros(self.size) if self.x0 is None else self.x0.copy()

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(theta=self.theta, dt=self.dt, x0=None if self.x0 is None else self.x0.tolist())
        return config

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        state["x_prev"] = self.x_prev.tolist()
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        self.x_prev = np.asarray(state["x_prev"], dtype=np.float64)
