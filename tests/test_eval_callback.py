"""`EvalCallback`: evaluation during training, its records, and the best weights it keeps."""

import json

import gymnasium as gym
import numpy as np
import pytest
from conftest import CountingEnv
from test_core import RecordingAgent
from test_ddpg import make_agent as make_ddpg

from rl.callbacks import Callback, EvalCallback, FileLogger


class SaveAtEval(Callback):
    """Saves the agent's weights at each evaluation, to compare with what EvalCallback kept."""

    def __init__(self, folder):
        super().__init__()
        self.folder = folder
        self.paths = {}

    def on_eval_end(self, step, logs=None):
        self.paths[step] = str(self.folder / f"eval_{step}.weights.h5")
        self.model.save_weights(self.paths[step])


def actor_weights(agent, path):
    agent.load_weights(path)
    return agent.actor.get_weights()


def pendulum_eval(seed=5):
    return EvalCallback(
        gym.make("Pendulum-v1"), eval_interval=200, nb_episodes=2, nb_max_episode_steps=30, seed=seed, verbose=0
    )


def test_ddpg_keeps_learning_after_each_evaluation_as_without_it(tmp_path):
    """Evaluations at episode ends leave a DDPG run bit for bit as it was, and it trains on after them."""
    plain = make_ddpg(gym.make("Pendulum-v1"), warmup=50)
    plain_history = plain.fit(gym.make("Pendulum-v1"), nb_steps=500, verbose=0, seed=0)

    agent = make_ddpg(gym.make("Pendulum-v1"), warmup=50)
    saver = SaveAtEval(tmp_path)
    history = agent.fit(gym.make("Pendulum-v1"), nb_steps=500, verbose=0, seed=0, callbacks=[pendulum_eval(), saver])
    assert agent.step == 500
    assert history.history["eval_step"] == [200, 400]
    assert history.history["episode_reward"] == plain_history.history["episode_reward"]
    for a, b in zip(
        agent.actor.get_weights() + agent.critic.get_weights(), plain.actor.get_weights() + plain.critic.get_weights()
    ):
        np.testing.assert_array_equal(a, b)
    # The weights kept changing after each evaluation.
    probe = make_ddpg(gym.make("Pendulum-v1"))
    at_200, at_400 = actor_weights(probe, saver.paths[200]), actor_weights(probe, saver.paths[400])
    final = agent.actor.get_weights()
    assert all(not np.array_equal(a, b) for a, b in zip(at_200, at_400))
    assert all(not np.array_equal(a, b) for a, b in zip(at_400, final))


def test_eval_results_are_recorded_at_their_steps_and_the_best_weights_kept(tmp_path, capsys):
    log = tmp_path / "log.json"
    best = tmp_path / "best" / "ddpg.weights.h5"
    agent = make_ddpg(gym.make("Pendulum-v1"), warmup=50)
    eval_cb = EvalCallback(
        gym.make("Pendulum-v1"), eval_interval=200, nb_episodes=2, nb_max_episode_steps=30, seed=5, save_best_to=best
    )
    saver = SaveAtEval(tmp_path)
    history = agent.fit(
        gym.make("Pendulum-v1"), nb_steps=600, verbose=0, seed=0, callbacks=[eval_cb, saver, FileLogger(log)]
    )
    means = history.history["eval_mean_return"]
    assert history.history["eval_step"] == [200, 400, 600]
    assert len(means) == 3 and all(np.isfinite(means))
    assert history.history["best_mean_return"] == list(np.maximum.accumulate(means))
    assert [e["eval_step"] for e in eval_cb.evaluations] == [200, 400, 600]
    for e in eval_cb.evaluations:
        assert len(e["returns"]) == 2
        assert e["eval_mean_return"] == pytest.approx(np.mean(e["returns"]))
        assert e["eval_std_return"] == pytest.approx(np.std(e["returns"]))
    best_step = [200, 400, 600][int(np.argmax(means))]
    assert eval_cb.best_step == best_step and eval_cb.best_mean_return == max(means)
    data = json.loads(log.read_text())
    for key in ("eval_step", "eval_mean_return", "eval_std_return", "best_mean_return"):
        assert data[key] == history.history[key]
    out = capsys.readouterr().out
    assert "Step 200: eval mean return" in out and "(new best, saved to" in out

    # The best file holds the weights of the best evaluation, and they play its return again.
    fresh = make_ddpg(gym.make("Pendulum-v1"), seed=1)
    kept = actor_weights(fresh, best)
    for a, b in zip(kept, actor_weights(make_ddpg(gym.make("Pendulum-v1"), seed=2), saver.paths[best_step])):
        np.testing.assert_array_equal(a, b)
    fresh.load_weights(best)
    replay = fresh.test(
        gym.make("Pendulum-v1"), nb_episodes=2, nb_max_episode_steps=30, seed=5, visualize=False, verbose=0
    )
    assert np.mean(replay.history["episode_reward"]) == pytest.approx(max(means), abs=1e-4)


def test_evaluate_now_outside_fit_and_no_evaluation_in_test():
    agent = make_recording_agent()
    eval_cb = EvalCallback(CountingEnv(terminate_at=3), eval_interval=1, nb_episodes=2, verbose=0)
    with pytest.raises(ValueError, match="set_model"):
        eval_cb.evaluate_now()
    agent.test(CountingEnv(terminate_at=3), nb_episodes=1, visualize=False, verbose=0, callbacks=[eval_cb])
    assert eval_cb.evaluations == []  # only training steps trigger evaluations
    eval_cb.set_model(agent)  # as an offline training loop would
    logs = eval_cb.evaluate_now(step=123)
    assert logs == {"eval_step": 123, "eval_mean_return": 3.0, "eval_std_return": 0.0, "best_mean_return": 3.0}
    assert eval_cb.best_step == 123


def make_recording_agent():
    agent = RecordingAgent()
    agent.compile()
    return agent


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"eval_env": "Pendulum-v1"}, TypeError, "`eval_env` must be a gymnasium environment"),
        ({"eval_interval": 0}, ValueError, r"`eval_interval` must be >= 1. Received: eval_interval=0"),
        ({"eval_interval": 2.5}, TypeError, r"`eval_interval` must be an integer. Received: eval_interval=2.5"),
        ({"nb_episodes": 0}, ValueError, r"`nb_episodes` must be >= 1. Received: nb_episodes=0"),
        ({"save_best_to": 3}, TypeError, r"`save_best_to` must be a path or None. Received: save_best_to=3"),
        ({"seed": "0"}, TypeError, r"`seed` must be an integer. Received: seed='0'"),
        ({"nb_max_episode_steps": 0}, ValueError, r"Received: nb_max_episode_steps=0"),
    ],
)
def test_bad_arguments_are_named(kwargs, error, message):
    kwargs = {"eval_env": CountingEnv(), **kwargs}
    with pytest.raises(error, match=message):
        EvalCallback(**kwargs)


def test_an_eval_env_with_other_spaces_is_refused_when_training_starts():
    agent = make_recording_agent()
    eval_cb = EvalCallback(CountingEnv(obs_dim=3), eval_interval=5)
    with pytest.raises(ValueError, match="observation_space differs"):
        agent.fit(CountingEnv(), nb_steps=5, verbose=0, callbacks=[eval_cb])
