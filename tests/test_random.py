import numpy as np
import pytest

from rl.random import GaussianWhiteNoiseProcess, OrnsteinUhlenbeckProcess


def test_ou_follows_its_recurrence():
    p = OrnsteinUhlenbeckProcess(theta=0.15, mu=0.5, sigma=0.3, dt=0.01, size=2, seed=0)
    normals = np.random.default_rng(0).standard_normal((3, 2))
    x = np.zeros(2)
    for k in range(3):
        x = x + 0.15 * (0.5 - x) * 0.01 + 0.3 * np.sqrt(0.01) * normals[k]
        np.testing.assert_allclose(p.sample(), x)


def test_ou_stationary_std_and_reset():
    p = OrnsteinUhlenbeckProcess(theta=1.0, sigma=0.5, dt=0.05, size=1, seed=1)
    xs = np.array([p.sample()[0] for _ in range(40_000)])
    assert abs(xs[5000:].std() - 0.5 / np.sqrt(2.0)) < 0.05  # sigma / sqrt(2 theta)
    p.reset_states()
    np.testing.assert_array_equal(p.x_prev, [0.0])
    q = OrnsteinUhlenbeckProcess(theta=1.0, x0=[3.0], size=1)
    assert q.x_prev[0] == 3.0


def test_gaussian_mean_std_and_annealing():
    g = GaussianWhiteNoiseProcess(mu=1.0, sigma=2.0, size=3, seed=2)
    xs = np.stack([g.sample() for _ in range(20_000)])
    assert xs.shape == (20_000, 3)
    assert abs(xs.mean() - 1.0) < 0.05 and abs(xs.std() - 2.0) < 0.05
    a = GaussianWhiteNoiseProcess(sigma=1.0, sigma_min=0.1, n_steps_annealing=100, seed=0)
    assert a.current_sigma == 1.0
    for _ in range(50):
        a.sample()
    assert a.current_sigma == pytest.approx(0.55)
    for _ in range(100):
        a.sample()
    assert a.current_sigma == pytest.approx(0.1)


def test_seeded_processes_repeat_and_state_round_trips():
    a = OrnsteinUhlenbeckProcess(theta=0.15, sigma=0.3, size=2, seed=5)
    b = OrnsteinUhlenbeckProcess(theta=0.15, sigma=0.3, size=2, seed=5)
    np.testing.assert_array_equal([a.sample() for _ in range(5)], [b.sample() for _ in range(5)])
    state = a.get_state()
    expected = [a.sample() for _ in range(3)]
    c = OrnsteinUhlenbeckProcess(theta=0.15, sigma=0.3, size=2, seed=99)
    c.set_state(state)
    np.testing.assert_array_equal([c.sample() for _ in range(3)], expected)


@pytest.mark.parametrize(
    "cls, kwargs, words",
    [
        (OrnsteinUhlenbeckProcess, {"theta": 0.0}, "theta"),
        (OrnsteinUhlenbeckProcess, {"theta": 0.1, "sigma": -1.0}, "sigma"),
        (OrnsteinUhlenbeckProcess, {"theta": 0.1, "size": 0}, "size"),
        (OrnsteinUhlenbeckProcess, {"theta": 0.1, "dt": 0.0}, "dt"),
        (GaussianWhiteNoiseProcess, {"sigma": 1.0, "sigma_min": 2.0}, "sigma_min"),
        (GaussianWhiteNoiseProcess, {"n_steps_annealing": 0}, "n_steps_annealing"),
    ],
)
def test_bad_arguments_name_the_argument(cls, kwargs, words):
    with pytest.raises(ValueError, match=words):
        cls(**kwargs)
