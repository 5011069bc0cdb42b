"""Ready-made networks for the common case: multilayer perceptrons shaped for an environment and an agent.

Bringing your own Keras models stays the main way to use the agents: any architecture works, as long
as its inputs and outputs have the shapes the agent documents. The functions here build the usual
ones, so that a first run needs no model code:

```python
import gymnasium as gym
import keras

from rl.agents import SACAgent
from rl.memory import SequentialMemory
from rl.networks import mlp_actor_critic

env = gym.make("Pendulum-v1")
agent = SACAgent(**mlp_actor_critic(env, agent="sac").agent_kwargs, memory=SequentialMemory(limit=100_000))
agent.compile(keras.optimizers.Adam(learning_rate=3e-4))
agent.fit(env, nb_steps=20_000)
```

| Function | Agents | Returns |
| --- | --- | --- |
| `mlp_actor_critic(env, agent)` | DDPG, TD3, TD3+BC, SAC, CrossQ | `ActorCriticNetworks(actor, critic, action_input)` |
| `mlp_actor_critic(env, "ppo")` | PPO | `ActorValueNetworks(actor, critic, action_space)` |
| `mlp_q_network(env)` | DQN, SARSA | a Keras model `s -> Q(s, .)` |
| `naf_networks(env)` | NAF | `NAFNetworks(V_model, L_model, mu_model)` |
| `mlp_policy(env)` | CEM | a Keras model `s -> scores` |

The result types are named tuples: unpack them (`actor, critic, action_input = ...`) or pass their
`agent_kwargs` to the agent (`SACAgent(**nets.agent_kwargs, memory=...)`).

Observations: a `gymnasium.spaces.Box` of any shape (flattened by the network's first layer). The
observation inputs are shaped `(window_length,) + obs_shape`, as in keras-rl, so the same
`window_length` must be given to the agent's memory (PPO acts on one observation: 1). Actions: a
`Box` of shape `(nb_actions,)` for the actor-critic agents and NAF, `Discrete(n)` for DQN, SARSA and
CEM (and either for PPO). For a vector environment the functions read its
`single_observation_space` and `single_action_space`.

The layers keep Keras' default initialisers; `keras.utils.set_random_seed(seed)` before a builder
call fixes the initial weights (the same seed gives the same networks).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import gymnasium as gym
import keras
import numpy as np
from keras import layers

from rl.layers import BatchRenormalization
from rl.util import check_int

__all__ = [
    "ActorCriticNetworks",
    "ActorValueNetworks",
    "NAFNetworks",
    "mlp_actor_critic",
    "mlp_policy",
    "mlp_q_network",
    "naf_networks",
]

ACTOR_CRITIC_AGENTS = ("ddpg", "td3", "td3bc", "sac", "crossq", "ppo")
"""The names `mlp_actor_critic` accepts for `agent` (case-insensitive; `"td3+bc"` is `"td3bc"`)."""

_DEFAULT_HIDDEN = {
    "ddpg": (256, 256),
    "td3": (256, 256),
    "td3bc": (256, 256),
    "sac": (256, 256),
    "crossq": (256, 256),
    "ppo": (64, 64),
}


class ActorCriticNetworks(NamedTuple):
    """An actor and a critic `Q(s, a)` for `DDPGAgent`, `TD3Agent`, `TD3BCAgent`, `SACAgent` or `CrossQAgent`.

    Attributes:
        actor: the actor, from the observation window to `nb_actions` actions (DDPG, TD3, TD3+BC)
            or to `2 * nb_actions` units (SAC and CrossQ: the Gaussian's means, then its log
            standard deviations).
        critic: the critic, from `[action, observation window]` to one Q-value, `(None, 1)`.
            TD3, SAC and CrossQ clone it into their twin critics.
        action_input: the critic's action `Input`, shape `(None, nb_actions)`: the agent's
            `critic_action_input`.
    """

    actor: keras.Model
    critic: keras.Model
    action_input: Any

    @property
    def nb_actions(self) -> int:
        """The size of the action vector."""
        return int(self.action_input.shape[-1])

    @property
    def agent_kwargs(self) -> dict[str, Any]:
        """The agent's arguments these networks fill: `nb_actions`, `actor`, `critic` and
        `critic_action_input`, for `Agent(**nets.agent_kwargs, memory=...)`."""
        return {
            "nb_actions": self.nb_actions,
            "actor": self.actor,
            "critic": self.critic,
            "critic_action_input": self.action_input,
        }


class ActorValueNetworks(NamedTuple):
    """A policy network, a state-value network `V(s)` and the action space, for PPO.

    In `PPOAgent`'s argument order: `PPOAgent(*nets, n_steps=...)` works, as does
    `PPOAgent(**nets.agent_kwargs, ...)`.

    Attributes:
        actor: from the observation to `n` logits (a `Discrete(n)` action space) or to the
            `nb_actions` means of a Gaussian (a `Box` of shape `(nb_actions,)`), linear.
        critic: the value network, from the observation to `V(s)`, `(None, 1)`.
        action_space: the environment's action space.
    """

    actor: keras.Model
    critic: keras.Model
    action_space: Any

    @property
    def agent_kwargs(self) -> dict[str, Any]:
        """The agent's arguments these networks fill: `actor`, `critic` and `action_space`."""
        return {"actor": self.actor, "critic": self.critic, "action_space": self.action_space}


class NAFNetworks(NamedTuple):
    """The three models of `NAFAgent`, in its constructor's order: `NAFAgent(*nets, memory=...)` works.

    Attributes:
        V_model: the state value `V(s)`, `(None, 1)`.
        L_model: the entries of the lower-triangular `L(s)` from the observation window:
            `nb_actions * (nb_actions + 1) // 2` (`covariance_mode='full'`) or `nb_actions`
            (`'diag'`).
        mu_model: the greedy action `mu(s)`, `(None, nb_actions)`.
    """

    V_model: keras.Model
    L_model: keras.Model
    mu_model: keras.Model

    @property
    def nb_actions(self) -> int:
        """The size of the action vector."""
        return int(self.mu_model.outputs[0].shape[-1])

    @property
    def covariance_mode(self) -> str:
        """`'full'` or `'diag'`, from `L_model`'s output width (the same maths with one action)."""
        n = self.nb_actions
        return "diag" if n > 1 and int(self.L_model.outputs[0].shape[-1]) == n else "full"

    @property
    def agent_kwargs(self) -> dict[str, Any]:
        """The agent's arguments these networks fill: `V_model`, `L_model`, `mu_model`,
        `nb_actions` and `covariance_mode`."""
        return {
            "V_model": self.V_model,
            "L_model": self.L_model,
            "mu_model": self.mu_model,
            "nb_actions": self.nb_actions,
            "covariance_mode": self.covariance_mode,
        }


# --------------------------------------------------------------------- the builders
def mlp_actor_critic(
    env: Any,
    agent: str,
    hidden: Sequence[int] | None = None,
    activation: str | Callable | None = None,
    window_length: int = 1,
) -> ActorCriticNetworks | ActorValueNetworks:
    """The usual actor and critic for `env` and an actor-critic agent: multilayer perceptrons.

    For `agent` in `"ddpg"`, `"td3"`, `"td3bc"`, `"sac"` and `"crossq"` (the action space a `Box` of
    shape `(nb_actions,)`):

    - the **actor**: observation window -> `Flatten` -> `hidden` `Dense` layers -> the output.
      DDPG, TD3 and TD3+BC: `Dense(nb_actions, "tanh")` scaled to the action space's bounds
      (`low + (tanh + 1) * (high - low) / 2`, a `Rescaling` layer), or a linear
      `Dense(nb_actions)` when a bound is infinite (the agents then need a `Processor` that maps
      actions). SAC and CrossQ: a linear `Dense(2 * nb_actions)`, the Gaussian's means then its
      log standard deviations; the agent squashes and scales the sample itself.
    - the **critic**: `[action, observation window]` -> concatenation of the action and the
      flattened window -> `hidden` `Dense` layers -> `Dense(1)`, the action through its own
      `Input` (returned as `action_input`). One critic: TD3, TD3+BC, SAC and CrossQ clone it into
      `n_critics` (2) critics with fresh weights.
    - CrossQ's networks also batch-renormalise (`rl.layers.BatchRenormalization`, its defaults) the
      actor's and the critic's input and every hidden layer's output, as the CrossQ paper does.

    For `agent="ppo"` (`window_length` 1): the actor outputs `n` logits for a `Discrete(n)`
    action space or `nb_actions` means for a `Box` (linear; the agent learns a state-independent
    log standard deviation), and the critic is the value network `V(s)`, `(None, 1)`, with the
    same hidden layers and no shared weights. PPO's networks are the usual ones of PPO
    implementations: `tanh` layers with orthogonal initialisation (gain `sqrt(2)` inside, `0.01`
    on the policy's output, `1` on the value's).

    The other agents' layers keep Keras' default initialisers. Call
    `keras.utils.set_random_seed(seed)` first for repeatable initial weights.

    Args:
        env: a gymnasium environment (or any object with `observation_space` and
            `action_space`; a vector environment's `single_observation_space` and
            `single_action_space` are used). The observation space must be a `Box`.
        agent: which agent the networks are for: `"ddpg"`, `"td3"`, `"td3bc"` (or `"td3+bc"`),
            `"sac"`, `"crossq"` or `"ppo"`, case-insensitive.
        hidden: the hidden layers' sizes, shared by actor and critic, e.g. `(256, 256)`; `()`
            for none. Defaults to `None`: `(256, 256)`, or `(64, 64)` for PPO.
        activation: the hidden layers' activation, a Keras activation name or function.
            Defaults to `None`: `"relu"`, or `"tanh"` for PPO.
        window_length: observations per state, as the agent's memory's `window_length`
            (1 for PPO). Defaults to `1`.

    Returns:
        `ActorCriticNetworks(actor, critic, action_input)`, or for PPO
        `ActorValueNetworks(actor, critic, action_space)`: named tuples, with `agent_kwargs` for
        the agent's constructor.

    Raises:
        TypeError: if `env` has no observation or action space, or a space of a kind the agent
            does not take, or if `agent`, `hidden` or `window_length` has the wrong type.
        ValueError: if `agent` is not one of the names above, an action `Box` is not
            one-dimensional, a hidden size is < 1, `activation` is unknown, `window_length < 1`,
            or `window_length != 1` with PPO.

    Example:

    ```python
    env = gym.make("Pendulum-v1")
    actor, critic, action_input = mlp_actor_critic(env, agent="sac", hidden=(256, 256))
    actor.output.shape  # (None, 2): SAC's actor outputs 2 * nb_actions units
    ```
    """
    if not isinstance(agent, str):
        raise TypeError(f"`agent` must be an agent's name, one of {ACTOR_CRITIC_AGENTS}. Received: agent={agent!r}")
    name = agent.lower().replace("+", "").replace("_", "").replace("-", "")
    if name not in ACTOR_CRITIC_AGENTS:
        raise ValueError(
            f"`agent` must be one of {ACTOR_CRITIC_AGENTS} (for DQN and SARSA use mlp_q_network, for NAF "
            f"naf_networks, for CEM mlp_policy). Received: agent={agent!r}"
        )
    hidden = _check_hidden(_DEFAULT_HIDDEN[name] if hidden is None else hidden)
    if activation is None:
        activation = "tanh" if name == "ppo" else "relu"
    activation = _check_activation(activation)
    window_length = check_int("window_length", window_length, minimum=1)
    obs_space, action_space = _spaces(env)
    obs_shape = _observation_shape(obs_space)
    if name == "ppo":
        return _ppo_networks(obs_shape, action_space, hidden, activation, window_length)

    nb_actions, low, high = _box_actions(action_space, agent=f"agent={agent!r}")
    renormalise = name == "crossq"
    observation_input = keras.Input((window_length,) + obs_shape, name="observation_input")
    x = _dense_stack(layers.Flatten()(observation_input), hidden, activation, renormalise=renormalise)
    if name in ("sac", "crossq"):
        output = layers.Dense(2 * nb_actions, name="mean_log_std")(x)
    else:
        output = _bounded_output(x, nb_actions, low, high)
    actor = keras.Model(observation_input, output, name="actor")

    action_input = keras.Input((nb_actions,), name="action_input")
    critic_observation_input = keras.Input((window_length,) + obs_shape, name="critic_observation_input")
    x = layers.Concatenate()([action_input, layers.Flatten()(critic_observation_input)])
    x = _dense_stack(x, hidden, activation, renormalise=renormalise)
    critic = keras.Model([action_input, critic_observation_input], layers.Dense(1, name="q_value")(x), name="critic")
    return ActorCriticNetworks(actor, critic, action_input)


def mlp_q_network(
    env: Any,
    hidden: Sequence[int] = (64, 64),
    activation: str | Callable | None = "relu",
    window_length: int = 1,
) -> keras.Model:
    """The usual Q-network for `DQNAgent` and `SARSAAgent`: a multilayer perceptron to one Q-value per action.

    Observation window `(window_length,) + obs_shape` -> `Flatten` -> `hidden` `Dense` layers ->
    a linear `Dense(n)` for a `Discrete(n)` action space. For a dueling network pass
    `enable_dueling_network=True` to `DQNAgent`: it replaces this last layer by a value and
    advantage head. `DQNAgent` and `SARSAAgent` read `nb_actions` from the output width.

    Layers keep Keras' default initialisers; call `keras.utils.set_random_seed(seed)` first for
    repeatable initial weights.

    Args:
        env: a gymnasium environment with a `Box` observation space and a `Discrete` action
            space (or any object with `observation_space` and `action_space`).
        hidden: the hidden layers' sizes; `()` for a linear Q-function. Defaults to `(64, 64)`.
        activation: the hidden layers' activation, a Keras activation name or function.
            Defaults to `"relu"`.
        window_length: observations per state, as the memory's `window_length`. Defaults to `1`.

    Returns:
        A Keras model with output shape `(None, n)`.

    Raises:
        TypeError: if `env`'s spaces are missing or not a `Box` observation space and a
            `Discrete` action space, or `hidden` or `window_length` has the wrong type.
        ValueError: if a hidden size is < 1, `activation` is unknown or `window_length < 1`.

    Example:

    ```python
    env = gym.make("CartPole-v1")
    model = mlp_q_network(env, hidden=(64, 64))
    agent = DQNAgent(model=model, memory=SequentialMemory(limit=50_000), target_model_update=1e-2)
    ```
    """
    return _discrete_scores(env, hidden, activation, window_length, name="q_network", what="mlp_q_network")


def mlp_policy(
    env: Any,
    hidden: Sequence[int] = (),
    activation: str | Callable | None = "relu",
    window_length: int = 1,
) -> keras.Model:
    """The usual policy for `CEMAgent`: observation window to one score per action, linear by default.

    Observation window `(window_length,) + obs_shape` -> `Flatten` -> `hidden` `Dense` layers ->
    a linear `Dense(n)` for a `Discrete(n)` action space: keras-rl's CEM policy (with `hidden=()`,
    a linear softmax policy: the agent draws actions with `softmax(scores)` while training and
    takes `argmax(scores)` in `test`). CEM searches over every weight, so small networks suit it.

    Args:
        env: a gymnasium environment with a `Box` observation space and a `Discrete` action
            space (or any object with `observation_space` and `action_space`).
        hidden: the hidden layers' sizes, e.g. `(16, 16, 16)`. Defaults to `()`.
        activation: the hidden layers' activation, a Keras activation name or function.
            Defaults to `"relu"`.
        window_length: observations per state, as the memory's `window_length`. Defaults to `1`.

    Returns:
        A Keras model with output shape `(None, n)`.

    Raises:
        TypeError: if `env`'s spaces are missing or not a `Box` observation space and a
            `Discrete` action space, or `hidden` or `window_length` has the wrong type.
        ValueError: if a hidden size is < 1, `activation` is unknown or `window_length < 1`.

    Example:

    ```python
    env = gym.make("CartPole-v1")
    agent = CEMAgent(model=mlp_policy(env), nb_actions=2, memory=EpisodeParameterMemory(limit=1000))
    ```
    """
    return _discrete_scores(env, hidden, activation, window_length, name="policy", what="mlp_policy")


def naf_networks(
    env: Any,
    hidden: Sequence[int] = (128, 128),
    activation: str | Callable | None = "relu",
    covariance_mode: str = "full",
    window_length: int = 1,
) -> NAFNetworks:
    """The usual `V`, `L` and `mu` models for `NAFAgent`: three separate multilayer perceptrons.

    Each takes the observation window `(window_length,) + obs_shape` -> `Flatten` -> `hidden`
    `Dense` layers, then: `V` a linear `Dense(1)`; `L` a linear `Dense` to `L(s)`'s entries
    (`nb_actions * (nb_actions + 1) // 2` for `'full'`, `nb_actions` for `'diag'`), on the
    observation only (an `L` that also reads the action makes `Q` no longer quadratic in it);
    `mu` a `Dense(nb_actions, "tanh")` scaled to the action space's bounds, or linear when a
    bound is infinite.

    Layers keep Keras' default initialisers; call `keras.utils.set_random_seed(seed)` first for
    repeatable initial weights.

    Args:
        env: a gymnasium environment with a `Box` observation space and a `Box` action space of
            shape `(nb_actions,)` (or any object with `observation_space` and `action_space`).
        hidden: the hidden layers' sizes of each model. Defaults to `(128, 128)`.
        activation: the hidden layers' activation, a Keras activation name or function.
            Defaults to `"relu"`.
        covariance_mode: `'full'` or `'diag'`, as `NAFAgent`'s (`agent_kwargs` passes it on).
            Defaults to `'full'`.
        window_length: observations per state, as the memory's `window_length`. Defaults to `1`.

    Returns:
        `NAFNetworks(V_model, L_model, mu_model)`, a named tuple in `NAFAgent`'s argument order,
        with `agent_kwargs`.

    Raises:
        TypeError: if `env`'s spaces are missing or not `Box` spaces, or `hidden` or
            `window_length` has the wrong type.
        ValueError: if the action `Box` is not one-dimensional, `covariance_mode` is not
            `'full'` or `'diag'`, a hidden size is < 1, `activation` is unknown or
            `window_length < 1`.

    Example:

    ```python
    env = gym.make("Pendulum-v1")
    agent = NAFAgent(**naf_networks(env).agent_kwargs, memory=SequentialMemory(limit=100_000))
    ```
    """
    if covariance_mode not in ("full", "diag"):
        raise ValueError(f"`covariance_mode` must be 'full' or 'diag'. Received: covariance_mode={covariance_mode!r}")
    hidden = _check_hidden(hidden)
    activation = _check_activation(activation)
    window_length = check_int("window_length", window_length, minimum=1)
    obs_space, action_space = _spaces(env)
    obs_shape = _observation_shape(obs_space)
    nb_actions, low, high = _box_actions(action_space, agent="NAF")
    l_units = nb_actions * (nb_actions + 1) // 2 if covariance_mode == "full" else nb_actions

    def mlp(name: str) -> tuple[Any, Any]:
        observation_input = keras.Input((window_length,) + obs_shape, name=f"{name}_observation_input")
        return observation_input, _dense_stack(layers.Flatten()(observation_input), hidden, activation)

    v_in, x = mlp("V")
    V_model = keras.Model(v_in, layers.Dense(1, name="value")(x), name="V")
    l_in, x = mlp("L")
    L_model = keras.Model(l_in, layers.Dense(l_units, name="l_entries")(x), name="L")
    mu_in, x = mlp("mu")
    mu_model = keras.Model(mu_in, _bounded_output(x, nb_actions, low, high), name="mu")
    return NAFNetworks(V_model, L_model, mu_model)


# --------------------------------------------------------------------- the pieces
def _ppo_networks(
    obs_shape: tuple, action_space: Any, hidden: tuple, activation: Any, window_length: int
) -> ActorValueNetworks:
    if window_length != 1:
        raise ValueError(
            "PPO acts on one observation at a time, so `window_length` must be 1. "
            f"Received: window_length={window_length}"
        )
    n = _discrete_n(action_space)
    if n is None:
        if not isinstance(action_space, gym.spaces.Box):
            raise TypeError(
                f"PPO's networks need a Discrete or Box action space. Received: env.action_space={action_space!r}"
            )
        n = _box_actions(action_space, agent="agent='ppo'")[0]
        head = "mean"
    else:
        head = "logits"

    def orthogonal(gain: float) -> Any:
        return keras.initializers.Orthogonal(gain)

    observation_input = keras.Input((window_length,) + obs_shape, name="observation_input")
    x = _dense_stack(layers.Flatten()(observation_input), hidden, activation, orthogonal(np.sqrt(2)))
    logits_or_means = layers.Dense(n, name=head, kernel_initializer=orthogonal(0.01))(x)
    actor = keras.Model(observation_input, logits_or_means, name="actor")
    value_input = keras.Input((window_length,) + obs_shape, name="value_observation_input")
    x = _dense_stack(layers.Flatten()(value_input), hidden, activation, orthogonal(np.sqrt(2)))
    value = layers.Dense(1, name="value", kernel_initializer=orthogonal(1.0))(x)
    critic = keras.Model(value_input, value, name="critic")
    return ActorValueNetworks(actor, critic, action_space)


def _discrete_scores(env: Any, hidden: Any, activation: Any, window_length: Any, name: str, what: str) -> keras.Model:
    hidden = _check_hidden(hidden)
    activation = _check_activation(activation)
    window_length = check_int("window_length", window_length, minimum=1)
    obs_space, action_space = _spaces(env)
    obs_shape = _observation_shape(obs_space)
    n = _discrete_n(action_space)
    if n is None:
        hint = " (for a Box, see mlp_actor_critic and naf_networks)" if isinstance(action_space, gym.spaces.Box) else ""
        raise TypeError(
            f"{what} needs a discrete action space (gymnasium.spaces.Discrete){hint}. "
            f"Received: env.action_space={action_space!r}"
        )
    observation_input = keras.Input((window_length,) + obs_shape, name="observation_input")
    x = _dense_stack(layers.Flatten()(observation_input), hidden, activation)
    return keras.Model(observation_input, layers.Dense(n, name="scores")(x), name=name)


def _spaces(env: Any) -> tuple[Any, Any]:
    """The observation and action spaces of one environment (a vector environment's single ones)."""
    obs_space = getattr(env, "single_observation_space", None)
    if obs_space is None:
        obs_space = getattr(env, "observation_space", None)
    action_space = getattr(env, "single_action_space", None)
    if action_space is None:
        action_space = getattr(env, "action_space", None)
    if obs_space is None or action_space is None:
        raise TypeError(
            f"`env` must be a gymnasium environment (an object with observation_space and action_space). "
            f"Received: env={env!r:.200}"
        )
    return obs_space, action_space


def _observation_shape(space: Any) -> tuple:
    if not isinstance(space, gym.spaces.Box):
        raise TypeError(
            "The networks need a Box observation space (an array of numbers, flattened by the first layer); for "
            "other spaces build your own model, or map observations to arrays with a Processor. "
            f"Received: env.observation_space={space!r}"
        )
    return tuple(int(d) for d in space.shape)


def _discrete_n(space: Any) -> int | None:
    """`n` of a `Discrete` space (or a keras-rl style one with an integer `n` and no shape), else `None`."""
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n)
    n = getattr(space, "n", None)
    if not isinstance(space, gym.spaces.Space) and isinstance(n, (int, np.integer)) and not isinstance(n, bool):
        return int(n)
    return None


def _box_actions(space: Any, agent: str) -> tuple[int, np.ndarray, np.ndarray]:
    """`(nb_actions, low, high)` of a one-dimensional `Box` action space."""
    if not isinstance(space, gym.spaces.Box):
        hint = " (for discrete actions, see mlp_q_network and mlp_policy)" if _discrete_n(space) is not None else ""
        raise TypeError(
            f"The networks for {agent} need a continuous action space (gymnasium.spaces.Box){hint}. "
            f"Received: env.action_space={space!r}"
        )
    if len(space.shape) != 1:
        raise ValueError(
            f"The networks for {agent} need a one-dimensional action space, shape (nb_actions,). "
            f"Received: env.action_space.shape={space.shape}"
        )
    return int(space.shape[0]), np.asarray(space.low, np.float64), np.asarray(space.high, np.float64)


def _bounded_output(x: Any, nb_actions: int, low: np.ndarray, high: np.ndarray) -> Any:
    """`Dense(nb_actions, "tanh")` scaled to `[low, high]`, or a linear `Dense` when a bound is infinite."""
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        return layers.Dense(nb_actions, name="action")(x)
    x = layers.Dense(nb_actions, activation="tanh", name="action_tanh")(x)
    scale, offset = (high - low) / 2.0, (high + low) / 2.0
    if np.all(scale == 1.0) and np.all(offset == 0.0):
        return x

    def plain(values: np.ndarray) -> float | list[float]:
        return float(values[0]) if np.all(values == values[0]) else [float(v) for v in values]

    return layers.Rescaling(plain(scale), plain(offset), name="action")(x)  # tanh's [-1, 1] -> [low, high]


def _dense_stack(
    x: Any, hidden: tuple, activation: Any, initializer: Any = "glorot_uniform", renormalise: bool = False
) -> Any:
    # `renormalise`: batch renormalisation of the input and of every hidden layer's output (CrossQ).
    if renormalise:
        x = BatchRenormalization()(x)
    for units in hidden:
        x = layers.Dense(units, activation=activation, kernel_initializer=initializer)(x)
        if renormalise:
            x = BatchRenormalization()(x)
    return x


def _check_hidden(hidden: Any) -> tuple[int, ...]:
    if not isinstance(hidden, (tuple, list)):
        raise TypeError(
            f"`hidden` must be a tuple of layer sizes, e.g. (256, 256), or () for none. Received: hidden={hidden!r}"
        )
    return tuple(check_int(f"hidden[{i}]", units, minimum=1) for i, units in enumerate(hidden))


def _check_activation(activation: Any) -> Any:
    try:
        keras.activations.get(activation)
    except (ValueError, TypeError) as error:
        raise ValueError(
            "`activation` must be a Keras activation name or function, e.g. 'relu'. "
            f"Received: activation={activation!r}"
        ) from error
    return activation
