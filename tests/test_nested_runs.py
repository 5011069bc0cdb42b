"""A run started inside another (`agent.test` from a callback during `fit`) hands the outer run back."""

import numpy as np
from conftest import CountingEnv
from test_core import RecordingAgent

from rl.callbacks import Callback


class ModeRecordingAgent(RecordingAgent):
    """Also records, per forward, whether it was training, and counts `reset_states` calls."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.modes = []
        self.resets = 0

    def forward(self, observation):
        self.modes.append(self.training)
        return super().forward(observation)

    def reset_states(self):
        self.resets += 1


class RunTestAt(Callback):
    """Runs `agent.test(env, nb_episodes)` from inside `fit` once `agent.step` reaches `at`."""

    def __init__(self, env, at, nb_episodes=2, test_callbacks=None):
        super().__init__()
        self.test_env, self.at, self.nb_episodes, self.test_callbacks = env, at, nb_episodes, test_callbacks
        self.histories = []

    def on_step_end(self, step, logs=None):
        if self.model.training and self.model.step == self.at:
            kw = {"callbacks": self.test_callbacks} if self.test_callbacks else {}
            history = self.model.test(self.test_env, nb_episodes=self.nb_episodes, visualize=False, verbose=0, **kw)
            self.histories.append(history)


def training_forwards(agent):
    return [obs for obs, mode in zip(agent.forwards, agent.modes) if mode]


def test_a_test_run_inside_fit_hands_fit_back():
    plain = ModeRecordingAgent()
    plain.compile()
    plain_history = plain.fit(CountingEnv(terminate_at=4), nb_steps=14, verbose=0, nb_max_start_steps=3, seed=0)

    agent = ModeRecordingAgent()
    agent.compile()
    probe = RunTestAt(CountingEnv(terminate_at=3), at=6)
    history = agent.fit(
        CountingEnv(terminate_at=4), nb_steps=14, verbose=0, nb_max_start_steps=3, seed=0, callbacks=[probe]
    )
    assert probe.histories[0].history["episode_reward"] == [3.0, 3.0]  # the nested test ran its 2 episodes
    assert agent.modes.count(False) == 6  # ...not training
    assert agent.step == 14 and agent.training is False  # fit ran all its steps, then ended as usual
    # Training went on after the test exactly as without it: same observations (so the same start
    # steps, drawn from fit's generator, not test's), same episodes, same History.
    np.testing.assert_array_equal(training_forwards(agent), training_forwards(plain))
    assert history.history == plain_history.history
    assert agent.history is history
    # One reset per nested episode (2), plus one to hand the outer episode a fresh state.
    assert agent.resets == plain.resets + 3


def test_stop_inside_a_nested_run_does_not_stop_fit_but_ctrl_c_does():
    class StopAtOnce(Callback):
        def on_step_end(self, step, logs=None):
            self.model.stop_training = True

    agent = ModeRecordingAgent()
    agent.compile()
    probe = RunTestAt(CountingEnv(terminate_at=3), at=2, test_callbacks=[StopAtOnce()])
    agent.fit(CountingEnv(terminate_at=4), nb_steps=10, verbose=0, callbacks=[probe])
    assert probe.histories[0].history.get("episode_reward") is None  # the nested run stopped after 1 step
    assert agent.step == 10  # fit did not

    class CtrlC(Callback):
        def on_step_end(self, step, logs=None):
            raise KeyboardInterrupt

    agent = ModeRecordingAgent()
    agent.compile()
    probe = RunTestAt(CountingEnv(terminate_at=3), at=2, test_callbacks=[CtrlC()])
    history = agent.fit(CountingEnv(terminate_at=4), nb_steps=10, verbose=0, callbacks=[probe])
    assert agent.step == 2  # Ctrl-C during the evaluation stops training too, cleanly
    assert history.history == {}
