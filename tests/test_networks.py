"""`rl.networks`: the built models fit each agent, on Pendulum, CartPole and multi-dimensional spaces."""

import types

import gymnasium as gym
import keras
import numpy as np
import pytest

import rl
from rl.agents import (
    CEMAgent,
    CrossQAgent,
    DDPGAgent,
    DQNAgent,
    NAFAgent,
    SACAgent,
    SARSAAgent,
    TD3Agent,
    TD3BCAgent,
)
from rl.memory import EpisodeParameterMemory, SequentialMemory
from rl.networks import (
    ActorCriticNetworks,
    ActorValueNetworks,
    NAFNetworks,
    mlp_actor_critic,
    mlp_policy,
    mlp_q_network,
    naf_networks,
)
from rl.random import GaussianWhiteNoiseProcess

LOW, HIGH = np.array([-1.0, 0.0], np.float32), np.array([1.0, 4.0], np.float32)


class GridEnv(gym.Env):
    """Observations of shape (2, 3); actions a Box of shape (2,) with bounds [-1, 1] x [0, 4], or Discrete(3).

    The reward is higher for actions near the middle of the bounds (Box) or for action 1 (Discrete);
    episodes last 25 steps.
    """

    def __init__(self, discrete=False):
        self.observation_space = gym.spaces.Box(-1.0, 1.0, shape=(2, 3), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(3) if discrete else gym.spaces.Box(LOW, HIGH, dtype=np.float32)
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self.np_random.uniform(-1, 1, (2, 3)).astype(np.float32), {}

    def step(self, action):
        self.t += 1
        if isinstance(self.action_space, gym.spaces.Discrete):
            reward = float(action == 1)
        else:
            reward = -float(np.sum((np.asarray(action) - (LOW + HIGH) / 2) ** 2))
        obs = self.np_random.uniform(-1, 1, (2, 3)).astype(np.float32)
        return obs, reward, False, self.t >= 25, {}


def pendulum():
    return gym.make("Pendulum-v1", max_episode_steps=50)


def cartpole():
    return gym.make("CartPole-v1")


def grid_discrete():
    return GridEnv(discrete=True)


def out_shape(model):
    return tuple(model.outputs[0].shape)


def in_shapes(model):
    return [tuple(t.shape) for t in model.inputs]


# ------------------------------------------------------------------ shapes
@pytest.mark.parametrize("agent", ["ddpg", "td3", "td3bc", "sac", "crossq"])
@pytest.mark.parametrize(
    "make, obs_shape, nb_actions",
    [(pendulum, (3,), 1), (GridEnv, (2, 3), 2)],
    ids=["pendulum", "grid"],
)
def test_actor_critic_shapes(agent, make, obs_shape, nb_actions):
    nets = mlp_actor_critic(make(), agent=agent, hidden=(8, 4))
    assert isinstance(nets, ActorCriticNetworks)
    actor, critic, action_input = nets  # unpacks as the agents' three arguments
    assert in_shapes(actor) == [(None, 1) + obs_shape]
    assert out_shape(actor) == (None, 2 * nb_actions if agent in ("sac", "crossq") else nb_actions)
    assert in_shapes(critic) == [(None, nb_actions), (None, 1) + obs_shape]
    assert critic.inputs[0] is action_input
    assert out_shape(critic) == (None, 1)
    assert [layer.units for layer in actor.layers if isinstance(layer, keras.layers.Dense)][:2] == [8, 4]
    # CrossQ's networks renormalise the input and each hidden layer's output; the others' have no statistics.
    for model in (actor, critic):
        kinds = [
            type(layer).__name__ for layer in model.layers if type(layer).__name__ in ("Dense", "BatchRenormalization")
        ]
        if agent == "crossq":
            assert kinds == [
                "BatchRenormalization",
                "Dense",
                "BatchRenormalization",
                "Dense",
                "BatchRenormalization",
                "Dense",
            ]
        else:
            assert kinds == ["Dense"] * 3 and not model.non_trainable_weights
    assert nets.nb_actions == nb_actions
    assert nets.agent_kwargs == {
        "nb_actions": nb_actions,
        "actor": actor,
        "critic": critic,
        "critic_action_input": action_input,
    }


@pytest.mark.parametrize(
    "make, obs_shape, n",
    [(cartpole, (4,), 2), (grid_discrete, (2, 3), 3)],
    ids=["cartpole", "grid"],
)
def test_discrete_shapes(make, obs_shape, n):
    env = make()
    for model in (mlp_q_network(env, hidden=(8,)), mlp_policy(env)):
        assert in_shapes(model) == [(None, 1) + obs_shape]
        assert out_shape(model) == (None, n)
        assert model.layers[-1].get_config()["activation"] == "linear"
    assert [type(layer).__name__ for layer in mlp_policy(env).layers] == ["InputLayer", "Flatten", "Dense"]


def test_discrete_builders_refuse_continuous_actions_and_actor_critic_refuses_discrete():
    with pytest.raises(TypeError, match=r"mlp_q_network needs a discrete action space.*Received: env.action_space=Box"):
        mlp_q_network(gym.make("Pendulum-v1"))
    with pytest.raises(TypeError, match=r"mlp_policy needs a discrete.*Received: env.action_space=Box"):
        mlp_policy(GridEnv())
    with pytest.raises(TypeError, match=r"continuous action space.*mlp_q_network.*Received: env.action_space=Discrete"):
        mlp_actor_critic(gym.make("CartPole-v1"), agent="sac")
    with pytest.raises(TypeError, match=r"Received: env.action_space=Discrete\(2\)"):
        naf_networks(gym.make("CartPole-v1"))


def test_window_length_shapes_the_observation_inputs():
    env = gym.make("Pendulum-v1")
    actor, critic, _ = mlp_actor_critic(env, agent="ddpg", hidden=(8,), window_length=4)
    assert in_shapes(actor) == [(None, 4, 3)]
    assert in_shapes(critic) == [(None, 1), (None, 4, 3)]
    assert in_shapes(mlp_q_network(gym.make("CartPole-v1"), window_length=3)) == [(None, 3, 4)]
    assert all(in_shapes(m) == [(None, 2, 3)] for m in naf_networks(env, hidden=(8,), window_length=2))


@pytest.mark.parametrize("make, obs_shape, actor_units", [(pendulum, (3,), 1), (grid_discrete, (2, 3), 3)])
def test_ppo_networks(make, obs_shape, actor_units):
    env = make()
    nets = mlp_actor_critic(env, agent="ppo", hidden=(8,))
    assert isinstance(nets, ActorValueNetworks)
    actor, critic, action_space = nets  # PPOAgent's first three arguments
    assert action_space is env.action_space
    assert in_shapes(actor) == in_shapes(critic) == [(None, 1) + obs_shape]
    assert out_shape(actor) == (None, actor_units)  # Box: means; Discrete: logits
    assert out_shape(critic) == (None, 1)
    assert actor.layers[-1].get_config()["activation"] == "linear"
    assert nets.agent_kwargs == {"actor": actor, "critic": critic, "action_space": action_space}
    assert [layer.units for layer in mlp_actor_critic(env, "PPO").actor.layers[2:]] == [64, 64, actor_units]
    assert not {id(w) for w in actor.weights} & {id(w) for w in critic.weights}


def test_default_hidden_sizes():
    env = gym.make("Pendulum-v1")
    dense = [layer.units for layer in mlp_actor_critic(env, "td3").actor.layers if hasattr(layer, "units")]
    assert dense == [256, 256, 1]
    assert [layer.units for layer in mlp_q_network(gym.make("CartPole-v1")).layers[2:]] == [64, 64, 2]
    assert [layer.units for layer in naf_networks(env).V_model.layers[2:]] == [128, 128, 1]


def test_naf_networks_shapes_and_modes():
    nets = naf_networks(GridEnv(), hidden=(8,))
    assert isinstance(nets, NAFNetworks)
    V_model, L_model, mu_model = nets  # NAFAgent's argument order
    assert [in_shapes(m) for m in nets] == [[(None, 1, 2, 3)]] * 3
    assert (out_shape(V_model), out_shape(L_model), out_shape(mu_model)) == ((None, 1), (None, 3), (None, 2))
    assert nets.covariance_mode == "full" and nets.nb_actions == 2
    diag = naf_networks(GridEnv(), hidden=(8,), covariance_mode="diag")
    assert out_shape(diag.L_model) == (None, 2)
    assert diag.agent_kwargs["covariance_mode"] == "diag" and diag.agent_kwargs["nb_actions"] == 2
    assert set(diag.agent_kwargs) == {"V_model", "L_model", "mu_model", "nb_actions", "covariance_mode"}
    assert len({id(w) for m in nets for w in m.weights}) == sum(len(m.weights) for m in nets)  # no shared weights


# ------------------------------------------------------------------ the values users rely on
def set_last_dense(model, bias):
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)][-1]
    kernel, _ = dense.get_weights()
    dense.set_weights([np.zeros_like(kernel), np.full(dense.units, bias, np.float32)])


@pytest.mark.parametrize(
    "build", [lambda env: mlp_actor_critic(env, "ddpg").actor, lambda env: naf_networks(env).mu_model]
)
def test_bounded_actions_span_the_action_space(build):
    env = GridEnv()  # bounds [-1, 1] x [0, 4]
    model = build(env)
    obs = np.zeros((5, 1, 2, 3), np.float32)
    for bias, expected in ((20.0, HIGH), (-20.0, LOW), (0.0, (LOW + HIGH) / 2)):
        set_last_dense(model, bias)  # tanh(bias) = 1, -1, 0
        np.testing.assert_allclose(model.predict(obs, verbose=0), np.tile(expected, (5, 1)), atol=1e-6)


def test_pendulum_actor_is_tanh_times_two_and_unbounded_actions_stay_linear():
    actor = mlp_actor_critic(gym.make("Pendulum-v1"), "td3", hidden=(4,)).actor
    assert actor.layers[-2].get_config()["activation"] == "tanh"
    assert actor.layers[-1].get_config()["scale"] == 2.0 and actor.layers[-1].get_config()["offset"] == 0.0
    symmetric = types.SimpleNamespace(observation_space=GridEnv().observation_space, action_space=gym.spaces.Box(-1, 1))
    assert isinstance(mlp_actor_critic(symmetric, "ddpg").actor.layers[-1], keras.layers.Dense)  # tanh is enough
    free = types.SimpleNamespace(
        observation_space=gym.spaces.Box(-1, 1, (3,)), action_space=gym.spaces.Box(-np.inf, np.inf, (2,))
    )
    for model in (mlp_actor_critic(free, "ddpg").actor, naf_networks(free).mu_model):
        assert model.layers[-1].get_config()["activation"] == "linear"


def test_same_seed_same_initial_weights():
    env = gym.make("Pendulum-v1")

    def weights(seed):
        keras.utils.set_random_seed(seed)
        nets = mlp_actor_critic(env, "sac", hidden=(8,))
        return [w for m in nets[:2] for w in m.get_weights()]

    first, again, other = weights(3), weights(3), weights(4)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(first, other))


def test_vector_env_uses_the_single_spaces():
    envs = gym.vector.SyncVectorEnv([lambda: gym.make("Pendulum-v1")] * 2)
    actor, critic, _ = mlp_actor_critic(envs, "sac", hidden=(4,))
    assert in_shapes(actor) == [(None, 1, 3)] and out_shape(actor) == (None, 2)
    envs.close()


def test_exposed_as_rl_networks():
    assert rl.networks.mlp_actor_critic is mlp_actor_critic
    assert "networks" in rl.__all__


# ------------------------------------------------------------------ bad input
def test_bad_arguments_name_the_value_received():
    env = gym.make("Pendulum-v1")
    with pytest.raises(ValueError, match=r"`agent` must be one of .*Received: agent='dqn'"):
        mlp_actor_critic(env, agent="dqn")
    with pytest.raises(TypeError, match=r"`agent` must be an agent's name.*Received: agent=<class"):
        mlp_actor_critic(env, agent=SACAgent)
    with pytest.raises(TypeError, match=r"`hidden` must be a tuple.*Received: hidden=256"):
        mlp_actor_critic(env, agent="sac", hidden=256)
    with pytest.raises(ValueError, match=r"`hidden\[1\]` must be >= 1. Received: hidden\[1\]=0"):
        mlp_q_network(gym.make("CartPole-v1"), hidden=(8, 0))
    with pytest.raises(TypeError, match=r"`hidden\[0\]` must be an integer. Received: hidden\[0\]=8.5"):
        naf_networks(env, hidden=(8.5,))
    with pytest.raises(ValueError, match=r"`activation` must be a Keras activation.*Received: activation='relu6x'"):
        mlp_policy(gym.make("CartPole-v1"), hidden=(4,), activation="relu6x")
    with pytest.raises(ValueError, match=r"`window_length` must be >= 1. Received: window_length=0"):
        mlp_actor_critic(env, agent="ddpg", window_length=0)
    with pytest.raises(ValueError, match=r"window_length` must be 1. Received: window_length=4"):
        mlp_actor_critic(env, agent="ppo", window_length=4)
    with pytest.raises(ValueError, match=r"Received: covariance_mode='lower'"):
        naf_networks(env, covariance_mode="lower")
    with pytest.raises(TypeError, match=r"`env` must be a gymnasium environment.*Received: env='Pendulum-v1'"):
        mlp_actor_critic("Pendulum-v1", agent="sac")


def test_unsupported_spaces_are_named():
    tabular = gym.make("FrozenLake-v1")
    with pytest.raises(TypeError, match=r"Box observation space.*Received: env.observation_space=Discrete\(16\)"):
        mlp_q_network(tabular)
    matrix = types.SimpleNamespace(
        observation_space=gym.spaces.Box(-1, 1, (3,)), action_space=gym.spaces.Box(-1, 1, (2, 2))
    )
    with pytest.raises(ValueError, match=r"one-dimensional action space.*Received: env.action_space.shape=\(2, 2\)"):
        mlp_actor_critic(matrix, agent="td3")
    with pytest.raises(ValueError, match=r"Received: env.action_space.shape=\(2, 2\)"):
        mlp_actor_critic(matrix, agent="ppo")
    multi = types.SimpleNamespace(
        observation_space=gym.spaces.Box(-1, 1, (3,)), action_space=gym.spaces.MultiDiscrete([2, 3])
    )
    with pytest.raises(TypeError, match=r"PPO's networks need a Discrete or Box.*Received: env.action_space=Multi"):
        mlp_actor_critic(multi, agent="ppo")


def test_keras_rl_style_discrete_space_is_read_by_its_n():
    class Discrete:  # a keras-rl test env's own space class
        def __init__(self, n):
            self.n = n

    env = types.SimpleNamespace(observation_space=gym.spaces.Box(-1, 1, (3,)), action_space=Discrete(np.int64(4)))
    assert out_shape(mlp_q_network(env)) == (None, 4)


# ------------------------------------------------------------------ each agent trains on the built models
def continuous_agent(kind, env, window_length=1):
    keras.utils.set_random_seed(0)
    nets = mlp_actor_critic(env, agent=kind, hidden=(8,), window_length=window_length)
    memory = SequentialMemory(limit=1000, window_length=window_length, seed=0)
    if kind in ("sac", "crossq"):
        cls = SACAgent if kind == "sac" else CrossQAgent
        return cls(**nets.agent_kwargs, memory=memory, batch_size=16, nb_steps_warmup=50)
    cls = {"ddpg": DDPGAgent, "td3": TD3Agent}[kind]
    noise = GaussianWhiteNoiseProcess(sigma=0.2, size=nets.nb_actions, seed=0)
    return cls(
        **nets.agent_kwargs,
        memory=memory,
        batch_size=16,
        nb_steps_warmup_critic=50,
        nb_steps_warmup_actor=50,
        random_process=noise,
    )


@pytest.mark.parametrize("kind", ["ddpg", "td3", "sac", "crossq"])
@pytest.mark.parametrize("make", [pendulum, GridEnv], ids=["pendulum", "grid"])
def test_actor_critic_agents_train(kind, make):
    env = make()
    agent = continuous_agent(kind, env)
    agent.compile(keras.optimizers.Adam(learning_rate=1e-3))
    history = agent.fit(env, nb_steps=200, verbose=0, seed=0)
    assert len(history.history["episode_reward"]) >= 3
    metrics = dict(zip(agent.metrics_names, agent.last_metrics))
    if kind == "crossq":  # the actor trains every third step: its loss is NaN on the others
        metrics.pop("actor_loss")
    assert all(np.isfinite(metrics[name]) for name in agent.base_metrics if name in metrics), metrics
    assert np.isfinite(agent.test(env, nb_episodes=1, visualize=False, verbose=0).history["episode_reward"]).all()


def test_window_of_four_trains_with_a_memory_of_the_same_window():
    env = GridEnv()
    agent = continuous_agent("td3", env, window_length=4)
    agent.compile(keras.optimizers.Adam(learning_rate=1e-3))
    agent.fit(env, nb_steps=120, verbose=0, seed=0)
    assert agent.input_shapes == [(4, 2, 3)]


def test_td3bc_trains_offline_on_the_built_models():
    env = GridEnv()
    rng = np.random.default_rng(0)
    obs, actions, rewards, ends = [], [], [], []
    o, _ = env.reset(seed=0)
    for _ in range(100):  # four 25-step episodes of random actions
        a = rng.uniform(LOW, HIGH).astype(np.float32)
        o2, r, terminated, truncated, _ = env.step(a)
        obs.append(o), actions.append(a), rewards.append(r), ends.append(truncated)
        o = env.reset()[0] if truncated else o2
    memory = SequentialMemory.from_arrays(
        np.array(obs), np.array(actions), np.array(rewards), np.zeros(100, bool), ends
    )
    keras.utils.set_random_seed(0)
    agent = TD3BCAgent(**mlp_actor_critic(env, agent="td3bc", hidden=(8,)).agent_kwargs, memory=memory, batch_size=16)
    agent.compile(keras.optimizers.Adam(learning_rate=3e-4))
    history = agent.fit_offline(60, verbose=0, log_interval=30)
    assert history.history["nb_steps"] == [30, 60]
    assert np.isfinite(history.history["bc_loss"]).all()


@pytest.mark.parametrize("covariance_mode", ["full", "diag"])
def test_naf_trains_on_the_built_models(covariance_mode):
    env = GridEnv()
    keras.utils.set_random_seed(0)
    nets = naf_networks(env, hidden=(8,), covariance_mode=covariance_mode)
    agent = NAFAgent(*nets, **{k: v for k, v in nets.agent_kwargs.items() if not k.endswith("_model")},
                     memory=SequentialMemory(limit=1000, seed=0), batch_size=16, nb_steps_warmup=50,
                     random_process=GaussianWhiteNoiseProcess(sigma=0.3, size=2, seed=0))  # fmt: skip
    agent.compile(keras.optimizers.Adam(learning_rate=1e-3))
    agent.fit(env, nb_steps=200, verbose=0, seed=0)
    assert agent.get_config()["covariance_mode"] == covariance_mode
    assert np.isfinite(agent.last_metrics[:2]).all()


@pytest.mark.parametrize("make", [cartpole, grid_discrete], ids=["cartpole", "grid"])
def test_dqn_and_sarsa_train_on_the_built_q_network(make):
    env = make()
    keras.utils.set_random_seed(0)
    memory = SequentialMemory(limit=1000, seed=0)
    dqn = DQNAgent(model=mlp_q_network(env, hidden=(8,)), memory=memory, nb_steps_warmup=50, batch_size=16,
                   target_model_update=1e-2, enable_dueling_network=True)  # fmt: skip
    dqn.compile(keras.optimizers.Adam(learning_rate=1e-3))
    dqn.fit(env, nb_steps=200, verbose=0, seed=0)
    assert np.isfinite(dqn.last_metrics[:2]).all()
    sarsa = SARSAAgent(model=mlp_q_network(env, hidden=(8,)))
    sarsa.compile(keras.optimizers.Adam(learning_rate=1e-3))
    history = sarsa.fit(env, nb_steps=200, verbose=0, seed=0)
    assert sarsa.nb_actions == env.action_space.n and history.history["episode_reward"]


@pytest.mark.parametrize("make", [cartpole, grid_discrete], ids=["cartpole", "grid"])
def test_cem_trains_on_the_built_policy(make):
    env = make()
    keras.utils.set_random_seed(0)
    agent = CEMAgent(model=mlp_policy(env), nb_actions=int(env.action_space.n), seed=0,
                     memory=EpisodeParameterMemory(limit=100, seed=0), batch_size=5, nb_steps_warmup=20,
                     train_interval=5)  # fmt: skip
    agent.compile()
    history = agent.fit(env, nb_steps=300, verbose=0, seed=0)
    assert len(history.history["episode_reward"]) >= 5


@pytest.mark.parametrize("make", [cartpole, pendulum], ids=["cartpole", "pendulum"])
def test_ppo_trains_on_the_built_networks(make):
    PPOAgent = pytest.importorskip("rl.agents.ppo").PPOAgent
    env = make()
    keras.utils.set_random_seed(0)
    agent = PPOAgent(*mlp_actor_critic(env, agent="ppo", hidden=(8,)), n_steps=64, batch_size=32, n_epochs=2)
    agent.compile(keras.optimizers.Adam(learning_rate=3e-4))
    history = agent.fit(env, nb_steps=128, verbose=0)
    assert history.history["episode_reward"] and agent.input_shapes == [(1,) + env.observation_space.shape]
