"""Experience collection on a Ray cluster: rollout workers act, the agent itself learns.

`fit(agent, env_fn, nb_steps, num_workers=N)` trains an off-policy agent (DDPG, TD3, SAC, ...)
with `N` rollout workers. Each worker holds its own environment (built by `env_fn`) and an
`ActingPolicy`, a copy of the agent's acting network with its exploration, and returns batches of
transitions. The learner (the agent, in the calling process) appends them to its replay memory
and trains with its usual compiled training step, as many updates per stored step as in
`Agent.fit`; it sends the acting network's weights to the workers through Ray's object store
every `weight_sync_interval` stored steps.

```
worker i: env_fn() --obs--> ActingPolicy.act --action--> env.step --> TransitionBatch
learner : ray.wait(first finished batch) --> memory.append (per worker) --> train step --> callbacks
          every weight_sync_interval steps: ray.put(acting weights) --> each worker's next request
```

Ray is an optional dependency (`pip install "keras-rl3[ray]"`), imported only by this module when
a run uses it. `backend="inprocess"` runs the same workers in the calling process, one after the
other, without Ray: for tests, debugging, and machines without Ray.
"""

from __future__ import annotations

import copy
import math
import socket
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import keras
import numpy as np

from rl.callbacks import CallbackList, TrainEpisodeLogger, TrainIntervalLogger
from rl.util import check_int

__all__ = ["ActingPolicy", "RolloutWorker", "TransitionBatch", "acting_weights", "fit"]

_BACKENDS = ("ray", "inprocess")


# ------------------------------------------------------------------ acting
class ActingPolicy:
    """What a rollout worker needs to act as an off-policy agent acts in `fit`, without its learner.

    Holds the configuration and weights of the agent's acting network (the first of
    `agent.policy_models()`, by role), a copy of its exploration noise process, its processor,
    action bounds, observation window and the plain (numeric, string) settings its `act_graph`
    reads. It pickles without TensorFlow state: the network is rebuilt from its configuration at
    the first `act`, and actions come from the agent class's own `act_graph` in a small
    `tf.function` of its own, so DDPG and TD3 act with their actor plus noise and SAC samples from
    its policy (its samples drawn from a seed stream of the policy's own).

    Args:
        agent: a built `rl.agents.off_policy.OffPolicyAgent` whose `_check_env` has seen the
            environment (so that the action bounds and input shapes are known); `fit` does this.

    Raises:
        TypeError: if `agent` is not an `OffPolicyAgent`.
        ValueError: if the agent has not seen an environment yet.

    Example:

    ```python
    policy = ActingPolicy(agent)          # picklable
    policy.seed(0)
    policy.reset_states()
    action = policy.act(observation)      # explores, like agent.forward inside fit
    policy.set_weights(new_weights)       # a list of arrays, as agent.models[policy.role].get_weights()
    ```
    """

    def __init__(self, agent: Any):
        from rl.agents.off_policy import OffPolicyAgent

        if not isinstance(agent, OffPolicyAgent):
            raise TypeError(
                "`agent` must be an off-policy agent (rl.agents.off_policy.OffPolicyAgent, e.g. DDPGAgent, TD3Agent, "
                f"SACAgent). Received: agent={agent!r}"
            )
        _check_acts_with_act_graph(agent)
        if getattr(agent, "_input_shapes", None) is None:
            raise ValueError(
                "The agent has not seen an environment yet: call `agent._check_env(env)` (fit does) before building "
                f"its acting policy. Received: agent={agent!r}"
            )
        acting = agent.policy_models()[0]
        self.role = next(role for role, model in agent.models.items() if model is acting)
        self.agent_class = type(agent)
        self.model_config = keras.saving.serialize_keras_object(acting)
        self.custom_objects = dict(agent.custom_model_objects)
        self.weights = [np.array(w) for w in acting_weights(agent)]
        self.settings = {k: v for k, v in vars(agent).items() if _plain(v)}
        self.random_process = copy.deepcopy(agent.random_process)
        self.processor = agent.processor
        self.window_length = int(agent.window_length)
        self.low, self.high = agent._low, agent._high
        self.input_shapes = [tuple(s) for s in agent._input_shapes]
        self._seed_key = 0
        self._rng = np.random.default_rng(0)  # uniform random actions (`nb_steps_random`)
        self._built: Any = None  # (model, {training: act function}, window), built on first use

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_built"] = None
        return state

    def seed(self, seed: int | Sequence[int]) -> None:
        """Seeds the noise process's generator (when it has one) and the policy's own sampling.

        Args:
            seed: an int or a sequence of ints (e.g. `[run_seed, worker_index]`).
        """
        seeds = np.random.SeedSequence(seed).generate_state(3)
        noise = self.random_process
        if noise is not None and isinstance(getattr(noise, "rng", None), np.random.Generator):
            noise.rng = np.random.default_rng(int(seeds[0]))
        self._seed_key = int(seeds[1] % (2**31 - 1))
        self._rng = np.random.default_rng(int(seeds[2]))
        if self._built is not None:
            self._built[3].set_state(np.array([self._seed_key, 0], np.int64))

    def set_weights(self, weights: list[np.ndarray]) -> None:
        """Replaces the acting network's weights (the arrays of `model.get_weights()`)."""
        self.weights = [np.asarray(w) for w in weights]
        if self._built is not None:
            self._built[0].set_weights(self.weights)
            self._built[4].pull()

    def reset_states(self) -> None:
        """Starts an episode: resets the noise process and the observation window."""
        if self.random_process is not None and hasattr(self.random_process, "reset_states"):
            self.random_process.reset_states()
        if self._built is not None:
            self._built[2].reset()

    def _build(self) -> tuple:
        import tensorflow as tf

        from rl.engine import CompiledFunctions, Fields, FlatWeights, Nets, SeedStream, flat_layout_fits
        from rl.memory import ObservationWindow

        with keras.saving.custom_object_scope(self.custom_objects):
            model = keras.saving.deserialize_keras_object(self.model_config)
        model.set_weights(self.weights)
        stream = SeedStream(self._seed_key)
        shell = object.__new__(self.agent_class)  # the agent's settings, without networks or memory
        shell.__dict__.update(copy.deepcopy(self.settings))
        shell.seed_stream = stream
        # Flat weights when exact (float32 trainable weights only): far fewer variables per call.
        net = FlatWeights(model, f"{self.role}_acting") if flat_layout_fits([model], []) else _ModelNet(model)
        net.pull()
        nets = Nets({self.role: net})
        fields = Fields([("state", [(1,) + s for s in self.input_shapes])])

        def build(training: bool) -> Callable:
            def act(flat: tf.Tensor) -> tf.Tensor:
                states = fields.unpack(flat)["state"]
                x = states[0] if len(states) == 1 else states
                return tf.cast(self.agent_class.act_graph(shell, nets, x, training)[0], tf.float32)  # [A]

            return act

        # The engine's registry: traced once per mode, then called without tf.function's Python layers.
        functions = CompiledFunctions(xla=False, fallback=False)
        self._built = (model, (functions, build, fields), ObservationWindow(self.window_length), stream, net)
        return self._built

    def act(self, observation: Any, training: bool = True, at_random: bool = False) -> np.ndarray:
        """Returns the action for `observation`, as the agent's `forward` does.

        Args:
            observation: the (processed) observation.
            training: explore (noise, or the policy's samples for SAC) as inside `fit`; `False`
                acts as `test` does. Defaults to `True`.
            at_random: draw the action uniformly within the action space's bounds instead, as the
                agent's first `nb_steps_random` steps do. Defaults to `False`.

        Returns:
            The action, float32 `[A]`, clipped to the action space's bounds when they are finite.

        Raises:
            ValueError: if `at_random` is set and the action space has no finite bounds.
        """
        from rl.engine import Signature

        built = self._built or self._build()
        state = built[2].push(observation)[None]  # [1, W, *obs]
        if at_random:
            if self.low is None:
                raise ValueError(
                    "Random actions are drawn within the action space's bounds, which this policy does not have "
                    f"(unbounded, or mapped by a Processor). Received: at_random={at_random!r}"
                )
            return self._rng.uniform(self.low, self.high).astype(np.float32)
        functions, build, fields = built[1]
        if self.processor is not None:
            parts = self.processor.process_state_batch(state)
            parts = list(parts) if isinstance(parts, (list, tuple)) else [parts]
            flat = np.concatenate([np.asarray(p, np.float32).reshape(-1) for p in parts])
        else:
            flat = np.asarray(state, np.float32).reshape(-1)
        action = functions.call(Signature("act", training, flat.shape[0]), lambda: build(training), flat, False)
        if training and self.random_process is not None:
            action = (action + self.random_process.sample()).astype(np.float32)
        if self.low is not None:
            action = np.minimum(np.maximum(action, self.low), self.high)
        return action


def _check_acts_with_act_graph(agent: Any) -> None:
    """Raises a TypeError if the agent picks actions otherwise than `act_graph` plus noise (e.g. DQN's policies)."""
    from rl.agents.off_policy import OffPolicyAgent

    if getattr(type(agent), "_finish_action", None) is not getattr(OffPolicyAgent, "_finish_action", None):
        raise TypeError(
            f"{type(agent).__name__} turns its networks' output into actions with a policy of its own; "
            "rl.distributed supports agents that act with act_graph plus noise (DDPGAgent, TD3Agent, SACAgent). "
            f"Received: agent={agent!r}"
        )


class _ModelNet:
    """A network called through its own Keras variables (the acting side of a weight layout)."""

    def __init__(self, model: keras.Model):
        self.model = model

    def pull(self) -> None:
        """Nothing to do: the model's variables are the state."""

    def __call__(self, inputs: Any, training: bool) -> Any:
        return self.model(inputs, training=training)


def acting_weights(agent: Any) -> list[np.ndarray]:
    """The current weights of the agent's acting network (`agent.policy_models()[0]`), as arrays.

    Reads the engine's training state when training keeps the weights there (the flat layout).

    Args:
        agent: an `OffPolicyAgent`.

    Returns:
        The arrays of `model.get_weights()`.
    """
    agent._sync_models()
    return agent.policy_models()[0].get_weights()


def _plain(value: Any) -> bool:
    """Whether `value` is plain data (numbers, strings, small arrays and containers of them)."""
    if value is None or isinstance(value, (bool, int, float, str, np.generic)):
        return True
    if isinstance(value, np.ndarray):
        return value.size <= 4096
    if isinstance(value, (tuple, list, frozenset)):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


# ------------------------------------------------------------------ workers
class TransitionBatch(NamedTuple):
    """Consecutive transitions of one worker, in the order it took them.

    Attributes:
        worker: the worker's index.
        generation: how many times the worker was restarted before it collected this batch.
        continues: whether the first transition continues the episode of the worker's previous
            batch (`False` when it starts a new episode).
        observations: `s_t` (processed), `[n, *obs]`.
        actions: `a_t` as the agent chose them (noise included, clipped), float32 `[n, A]`.
        rewards: `r_t` (processed), float32 `[n]`.
        terminals: whether the episode terminated at `s_{t+1}` (no bootstrap), bool `[n]`.
        truncations: whether it stopped there without terminating (a time limit), bool `[n]`.
        next_observations: `s_{t+1}`, the real final observation at episode ends, `[n, *obs]`.
        weights_version: the version of the weights the actions were taken with.
        seconds: the time the worker spent collecting the batch.
    """

    worker: int
    generation: int
    continues: bool
    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminals: np.ndarray
    truncations: np.ndarray
    next_observations: np.ndarray
    weights_version: int
    seconds: float

    def __len__(self) -> int:  # the number of transitions (not of fields)
        return int(self.rewards.shape[0])


class RolloutWorker:
    """One environment and one `ActingPolicy`: collects transitions on request.

    The same class runs in the calling process (`backend="inprocess"`) and as a Ray actor (one
    CPU, no GPU). The environment's episode goes on from one `sample` call to the next.

    Args:
        env_fn: a function without arguments that returns a gymnasium environment.
        policy: the acting policy (copied for this worker).
        index: the worker's index in the run.
        seed: the run's seed; the worker's environment, action space, noise and policy samples
            are seeded from `(seed, index, generation)`.
        generation: how many times this worker was restarted. Defaults to `0`.
        nb_max_episode_steps: truncate episodes after this many steps, or `None`. Defaults to
            `None`.

    Raises:
        TypeError: if `env_fn()` does not return a gymnasium environment.
    """

    def __init__(
        self,
        env_fn: Callable[[], Any],
        policy: ActingPolicy,
        index: int,
        seed: int,
        generation: int = 0,
        nb_max_episode_steps: int | None = None,
    ):
        self.index = index
        self.generation = generation
        self.env = env_fn()
        if not (hasattr(self.env, "reset") and hasattr(self.env, "step")):
            raise TypeError(f"`env_fn` must return a gymnasium environment. Received: env_fn() -> {self.env!r}")
        self.policy = copy.deepcopy(policy)
        seeds = np.random.SeedSequence([seed, index, generation]).generate_state(3)
        self.policy.seed([int(seeds[0]), index])
        self._reset_seed: int | None = int(seeds[1])
        space = getattr(self.env, "action_space", None)
        if space is not None and hasattr(space, "seed"):
            space.seed(int(seeds[2]))
        self.nb_max_episode_steps = nb_max_episode_steps
        self.version = -1
        self._observation: Any = None
        self._episode_step = 0
        self._episode_started_here = True

    def set_weights(self, weights: list[np.ndarray], version: int) -> None:
        """Loads acting weights of the given version."""
        self.policy.set_weights(weights)
        self.version = version

    def _reset(self) -> Any:
        result = self.env.reset(seed=self._reset_seed) if self._reset_seed is not None else self.env.reset()
        self._reset_seed = None
        if not (isinstance(result, tuple) and len(result) == 2):
            raise TypeError(
                "`env.reset()` must return `(observation, info)` as gymnasium environments do. "
                f"Received: {result!r:.200}"
            )
        observation = result[0]
        if self.policy.processor is not None:
            observation = self.policy.processor.process_observation(observation)
        self.policy.reset_states()
        self._episode_step = 0
        return np.array(observation, copy=True)

    def sample(
        self, nb_steps: int, weights: list[np.ndarray] | None = None, version: int = -1, nb_random: int = 0
    ) -> TransitionBatch:
        """Takes `nb_steps` environment steps with exploration and returns them.

        Args:
            nb_steps: number of transitions to collect, >= 1.
            weights: new acting weights to load first, or `None` to keep the current ones.
                Defaults to `None`.
            version: the version of `weights`. Defaults to `-1`.
            nb_random: the first this many of the steps act uniformly at random (the agent's
                `nb_steps_random`, counted over all workers by the learner). Defaults to `0`.

        Returns:
            A `TransitionBatch` of `nb_steps` transitions.

        Raises:
            ValueError: if the policy returns a non-finite action or the environment a
                non-finite reward.
        """
        start = time.perf_counter()
        if weights is not None:
            self.set_weights(weights, version)
        processor, low, high = self.policy.processor, None, None
        space = getattr(self.env, "action_space", None)
        if space is not None and getattr(space, "low", None) is not None:
            if np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high)):
                low, high = space.low, space.high
        continues = self._observation is not None
        obs0, actions, rewards, terminals, truncations, obs1 = [], [], [], [], [], []
        for i in range(nb_steps):
            if self._observation is None:
                self._observation = self._reset()
            observation = self._observation
            action = self.policy.act(observation, training=True, at_random=i < nb_random)
            if not np.all(np.isfinite(action)):
                raise ValueError(
                    f"The acting policy returned a non-finite action on worker {self.index}. "
                    f"Received: action={action!r}"
                )
            env_action = processor.process_action(action) if processor is not None else action
            if low is not None:
                env_action = np.minimum(np.maximum(env_action, low), high)
            next_observation, reward, terminated, truncated, info = self.env.step(env_action)
            if processor is not None:
                next_observation, reward, terminated, info = processor.process_step(
                    next_observation, reward, terminated, info
                )
            reward = float(reward)
            if not math.isfinite(reward):
                raise ValueError(
                    f"The environment returned a non-finite reward on worker {self.index}. Received: reward={reward!r}"
                )
            next_observation = np.array(next_observation, copy=True)
            self._episode_step += 1
            if self.nb_max_episode_steps is not None and self._episode_step >= self.nb_max_episode_steps:
                truncated = truncated or not terminated
            obs0.append(observation)
            actions.append(action)
            rewards.append(reward)
            terminals.append(bool(terminated))
            truncations.append(bool(truncated) and not terminated)
            obs1.append(next_observation)
            self._observation = None if (terminated or truncated) else next_observation
        return TransitionBatch(
            worker=self.index,
            generation=self.generation,
            continues=continues,
            observations=np.stack(obs0),
            actions=np.stack(actions).astype(np.float32),
            rewards=np.asarray(rewards, np.float32),
            terminals=np.asarray(terminals, bool),
            truncations=np.asarray(truncations, bool),
            next_observations=np.stack(obs1),
            weights_version=self.version,
            seconds=time.perf_counter() - start,
        )

    def close(self) -> None:
        """Closes the environment."""
        close = getattr(self.env, "close", None)
        if callable(close):
            close()


# ------------------------------------------------------------------ pools
class _InProcessPool:
    """Workers in the calling process; a request runs when its result is waited for."""

    def __init__(self, make_worker: Callable[[int, int], RolloutWorker], num_workers: int):
        self.make_worker = make_worker
        self.generation = [0] * num_workers
        self.workers: list[RolloutWorker | None] = [make_worker(i, 0) for i in range(num_workers)]
        self.pending: list[tuple[int, int, Any, int, int]] = []

    def put_weights(self, weights: list[np.ndarray]) -> Any:
        return weights

    def submit(self, index: int, nb_steps: int, weights: Any, version: int, nb_random: int) -> None:
        self.pending.append((index, nb_steps, weights, version, nb_random))

    def wait(self, all_pending: bool) -> list[tuple[int, Any]]:
        requests = self.pending if all_pending else self.pending[:1]
        self.pending = self.pending[len(requests) :]
        out = []
        for index, nb_steps, weights, version, nb_random in requests:
            try:
                out.append((index, self.workers[index].sample(nb_steps, weights, version, nb_random)))
            except Exception as e:  # noqa: BLE001 - a failing environment is a worker fault
                out.append((index, e))
        return out

    def restart(self, index: int) -> None:
        self.generation[index] += 1
        old, self.workers[index] = self.workers[index], None
        try:
            old.close()
        except Exception:  # noqa: BLE001 - a broken environment may not close
            pass
        self.workers[index] = self.make_worker(index, self.generation[index])

    def close(self) -> None:
        for worker in self.workers:
            try:
                worker.close()
            except Exception:  # noqa: BLE001
                pass


class _RayPool:
    """Workers as Ray actors (one CPU thread each, no GPU); results are taken as they finish."""

    def __init__(self, ray: Any, args: tuple, num_workers: int):
        self.ray = ray
        self.remote_class = ray.remote(num_cpus=1, num_gpus=0, max_restarts=0)(_RayWorker)
        self.args = args
        self.generation = [0] * num_workers
        self.actors = [self._start(i) for i in range(num_workers)]
        self.pending: dict[Any, int] = {}  # object ref -> worker index

    def _start(self, index: int) -> Any:
        env_fn, policy, seed, nb_max_episode_steps = self.args
        return self.remote_class.remote(env_fn, policy, index, seed, self.generation[index], nb_max_episode_steps)

    def put_weights(self, weights: list[np.ndarray]) -> Any:
        return self.ray.put(weights)  # once per sync; every worker reads the same object

    def submit(self, index: int, nb_steps: int, weights: Any, version: int, nb_random: int) -> None:
        ref = self.actors[index].sample.remote(nb_steps, weights, version, nb_random)
        self.pending[ref] = index

    def wait(self, all_pending: bool) -> list[tuple[int, Any]]:
        refs = list(self.pending)
        ready, _ = self.ray.wait(refs, num_returns=len(refs) if all_pending else 1)
        out = []
        for ref in ready:
            index = self.pending.pop(ref)
            try:
                out.append((index, self.ray.get(ref)))
            except self.ray.exceptions.RayError as e:  # a dead actor or an exception in the environment
                out.append((index, e))
        return out

    def restart(self, index: int) -> None:
        for ref in [r for r, i in self.pending.items() if i == index]:
            del self.pending[ref]
        try:
            self.ray.kill(self.actors[index], no_restart=True)
        except Exception:  # noqa: BLE001 - already dead
            pass
        self.generation[index] += 1
        self.actors[index] = self._start(index)

    def close(self) -> None:
        for actor in self.actors:
            try:
                self.ray.kill(actor, no_restart=True)
            except Exception:  # noqa: BLE001
                pass


class _RayWorker(RolloutWorker):
    """A `RolloutWorker` inside a Ray actor process, limited to one CPU thread."""

    def __init__(self, *args: Any):
        import tensorflow as tf

        try:  # this process is the worker's own: one thread for TensorFlow's ops
            tf.config.threading.set_intra_op_parallelism_threads(1)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:
            pass
        super().__init__(*args)


# ------------------------------------------------------------------ Ray
def _import_ray() -> Any:
    try:
        import ray
    except ImportError as e:
        raise ImportError(
            'rl.distributed needs Ray: install the `ray` extra with `pip install "keras-rl3[ray]"` (or '
            '`pip install "ray>=2.9"`), or pass backend="inprocess" to run the workers in this process.'
        ) from e
    return ray


def _check_address(address: str) -> tuple[str, int] | None:
    """The `(host, port)` to probe for `address`, or `None` for 'auto' and 'local'; raises on a bad form."""
    if address in ("auto", "local"):
        return None
    rest = address[len("ray://") :] if address.startswith("ray://") else address
    host, sep, port = rest.rpartition(":")
    if "://" in rest or not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(
            "`address` must be None, 'auto', 'local', 'HOST:PORT' (a cluster started with `ray start --head`) or "
            f"'ray://HOST:PORT' (Ray Client). Received: address={address!r}"
        )
    return host, int(port)


def _connect(ray: Any, address: str | None) -> bool:
    """Connects to Ray (or starts a local cluster); returns whether this call started the connection."""
    target = _check_address(address) if address is not None else None
    if target is not None:
        try:
            socket.create_connection(target, timeout=5.0).close()
        except OSError as e:
            raise ConnectionError(
                f"No Ray cluster answers at {target[0]}:{target[1]} ({e}). Start one with `ray start --head` (its "
                f"output gives the address), or pass address=None for a local cluster. Received: address={address!r}"
            ) from e
    if ray.is_initialized():
        if address is not None:
            raise ValueError(
                "Ray is already initialized in this process; pass address=None to use that connection. "
                f"Received: address={address!r}"
            )
        return False
    try:
        if address in (None, "local"):  # a local cluster for this run, without the dashboard's processes
            ray.init(address=address, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
        else:  # an existing cluster (or Ray Client): its own settings hold
            ray.init(address=address, logging_level="ERROR")
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise ConnectionError(f"Could not connect to Ray ({e}). Received: address={address!r}") from e
    return True


def _check_picklable(ray: Any, env_fn: Any) -> None:
    try:
        ray.cloudpickle.dumps(env_fn)
    except Exception as e:  # noqa: BLE001 - whatever pickling raises, the function cannot be sent
        raise TypeError(
            "`env_fn` must be picklable to be sent to the Ray workers (a module-level function, a class, or a "
            "functools.partial of them; not a function holding an open environment, file or lock). "
            f"Received: env_fn={env_fn!r} ({type(e).__name__}: {e})"
        ) from e


# ------------------------------------------------------------------ the learner
def _last_line(error: BaseException) -> str:
    """The error's type and the last line of its message (Ray's errors carry the remote traceback)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[-1] if lines else ''}"


class _Episode:
    __slots__ = ("number", "reward", "steps")

    def __init__(self, number: int):
        self.number, self.reward, self.steps = number, 0.0, 0


def fit(
    agent: Any,
    env_fn: Callable[[], Any],
    nb_steps: int,
    num_workers: int = 2,
    steps_per_sample: int = 50,
    weight_sync_interval: int = 100,
    address: str | None = None,
    callbacks: list | None = None,
    verbose: int = 1,
    seed: int | None = None,
    synchronous: bool = False,
    backend: str = "ray",
    nb_max_episode_steps: int | None = None,
    max_worker_restarts: int = 10,
    log_interval: int = 10000,
) -> keras.callbacks.History:
    """Trains an off-policy agent on transitions collected by `num_workers` rollout workers.

    The agent is the learner: it appends each worker's transitions to its memory (episodes kept
    apart per worker) and trains with its own compiled step, on the same schedule as in
    `Agent.fit` (warm-up, `train_interval`, `gradient_steps` and target updates count stored
    steps). `agent.step` counts environment steps over all workers, across calls. Results are
    taken as they finish (`ray.wait`), not in the order they were asked for; with
    `synchronous=True` each round asks every worker for `steps_per_sample` steps, waits for all,
    and stores them in worker order, which makes a seeded run reproducible.

    A worker that dies (its process killed, or its environment raising) is restarted with the
    current weights and a new episode; what it had collected but not returned is lost, what was
    stored stays, and nothing is stored twice. Callbacks work as in `fit`: `Checkpoint` saves
    the learner, so a killed learner resumes with `agent.load_checkpoint(dirpath)` and another
    `fit` for the remaining steps.

    Args:
        agent: a compiled `OffPolicyAgent` (`DDPGAgent`, `TD3Agent`, `SACAgent`, ...) whose
            memory has `window_length=1`.
        env_fn: a function without arguments returning a new gymnasium environment; called once
            in this process (for the spaces, given to callbacks as their `env`) and once per
            worker. Must be picklable with the Ray backend.
        nb_steps: environment steps to train for, over all workers, >= 1.
        num_workers: rollout workers, >= 1. Defaults to `2`.
        steps_per_sample: transitions a worker collects per request, >= 1. Defaults to `50`.
        weight_sync_interval: stored steps between two weight broadcasts, >= 1. Defaults to
            `100`.
        address: the Ray cluster: `None` (a local cluster, or the one `ray.init` connected this
            process to), `"auto"`, `"HOST:PORT"` of a cluster started with `ray start --head`, or
            `"ray://HOST:PORT"` (Ray Client). Defaults to `None`.
        callbacks: `rl.callbacks.Callback`s or Keras callbacks, as in `fit`. Defaults to `None`.
        verbose: `0` silent, `1` progress per `log_interval` steps, `2` one line per episode.
            Defaults to `1`.
        seed: seeds every worker's environment, action space, noise and policy samples from
            `(seed, worker index)`, or `None` for fresh entropy. Defaults to `None`.
        synchronous: collect in rounds over all workers (reproducible) instead of taking
            results as they finish. Defaults to `False`.
        backend: `"ray"`, or `"inprocess"` to run the workers in this process (no Ray, no
            parallelism; same interface and results as `synchronous=True`). Defaults to `"ray"`.
        nb_max_episode_steps: truncate every worker's episodes after this many steps, or
            `None`. Defaults to `None`.
        max_worker_restarts: worker restarts allowed over the run before the last failure is
            raised, >= 0. Defaults to `10`.
        log_interval: steps per progress interval with `verbose=1`. Defaults to `10000`.

    Returns:
        A `keras.callbacks.History` whose `history` holds per-episode `episode_reward`,
        `nb_episode_steps` and `nb_steps`, as `Agent.fit` returns.

    Raises:
        ImportError: if the Ray backend is asked for and Ray is not installed (naming the extra).
        TypeError: if `agent` is not an off-policy agent, `env_fn` is not callable or (with Ray)
            cannot be pickled, or an argument has the wrong type.
        ValueError: if the agent is not compiled, its memory's `window_length` is not 1, or an
            argument is out of range; `address` of a wrong form.
        ConnectionError: if no Ray cluster answers at `address`.
        RuntimeError: if workers failed more than `max_worker_restarts` times (from the last
            failure).
    """
    from rl.agents.off_policy import OffPolicyAgent

    if not isinstance(agent, OffPolicyAgent):
        raise TypeError(
            "`agent` must be an off-policy agent (rl.agents.off_policy.OffPolicyAgent: DDPGAgent, TD3Agent, SACAgent, "
            f"...). Received: agent={agent!r}"
        )
    _check_acts_with_act_graph(agent)
    if not agent.compiled:
        raise ValueError("You must call `compile()` before calling `rl.distributed.fit()`.")
    if agent.window_length != 1:
        raise ValueError(
            "rl.distributed.fit stores several workers' episodes side by side, which needs a memory with "
            f"window_length=1. Received: window_length={agent.window_length}"
        )
    if not callable(env_fn):
        raise TypeError(f"`env_fn` must be a function returning an environment. Received: env_fn={env_fn!r}")
    nb_steps = check_int("nb_steps", nb_steps, minimum=1)
    num_workers = check_int("num_workers", num_workers, minimum=1)
    steps_per_sample = check_int("steps_per_sample", steps_per_sample, minimum=1)
    weight_sync_interval = check_int("weight_sync_interval", weight_sync_interval, minimum=1)
    max_worker_restarts = check_int("max_worker_restarts", max_worker_restarts, minimum=0)
    log_interval = check_int("log_interval", log_interval, minimum=1)
    verbose = check_int("verbose", verbose, minimum=0)
    if nb_max_episode_steps is not None:
        nb_max_episode_steps = check_int("nb_max_episode_steps", nb_max_episode_steps, minimum=1)
    if seed is not None:
        seed = check_int("seed", seed, minimum=0)
    if backend not in _BACKENDS:
        raise ValueError(f"`backend` must be one of {_BACKENDS}. Received: backend={backend!r}")
    if address is not None and not isinstance(address, str):
        raise TypeError(f"`address` must be a string or None. Received: address={address!r}")
    if address is not None and backend == "inprocess":
        raise ValueError(f"`address` needs backend='ray'. Received: address={address!r}, backend={backend!r}")
    if not isinstance(synchronous, bool):
        raise TypeError(f"`synchronous` must be a bool. Received: synchronous={synchronous!r}")
    ray = None
    if backend == "ray":
        ray = _import_ray()
        if address is not None:
            _check_address(address)
        _check_picklable(ray, env_fn)
    if seed is None:
        seed = int(np.random.SeedSequence().generate_state(1)[0])

    env = env_fn()
    if not (hasattr(env, "reset") and hasattr(env, "step")):
        raise TypeError(f"`env_fn` must return a gymnasium environment. Received: env_fn() -> {env!r}")
    agent._check_env(env)
    if agent._input_shapes is None:  # with a processor, the shapes come from a processed first observation
        observation = env.reset(seed=seed)[0]
        if agent.processor is not None:
            observation = agent.processor.process_observation(observation)
        agent._setup_inputs(observation)
    if agent.step < agent.nb_steps_random:
        agent.random_actions(0)  # raises, naming nb_steps_random, when there are no bounds to draw from
    policy = ActingPolicy(agent)

    started_ray = False
    if ray is not None:
        started_ray = _connect(ray, address)
        try:
            pool: Any = _RayPool(ray, (env_fn, policy, seed, nb_max_episode_steps), num_workers)
        except BaseException:
            if started_ray:
                ray.shutdown()
            raise
    else:

        def make_worker(index: int, generation: int) -> RolloutWorker:
            return RolloutWorker(env_fn, policy, index, seed, generation, nb_max_episode_steps)

        pool = _InProcessPool(make_worker, num_workers)
        synchronous = True
    try:
        return _Learner(agent, pool, env, nb_steps, steps_per_sample, weight_sync_interval, max_worker_restarts).run(
            callbacks, verbose, log_interval, synchronous
        )
    finally:
        pool.close()
        if started_ray:
            ray.shutdown()
        close = getattr(env, "close", None)
        if callable(close):
            close()


class _Learner:
    """The learner's side of one `fit` call: requests, storage, training, weight broadcasts."""

    def __init__(
        self,
        agent: Any,
        pool: Any,
        env: Any,
        nb_steps: int,
        steps_per_sample: int,
        weight_sync_interval: int,
        max_worker_restarts: int,
    ):
        self.agent, self.pool, self.env = agent, pool, env
        self.nb_steps = nb_steps
        self.steps_per_sample = steps_per_sample
        self.weight_sync_interval = weight_sync_interval
        self.restarts_left = max_worker_restarts
        self.num_workers = len(pool.generation)
        self.version = 0
        self.weights: Any = None
        self.worker_version = [-1] * self.num_workers
        self.outstanding = [0] * self.num_workers  # steps asked for and not yet returned, per worker
        self.unstored = 0  # steps returned and not yet stored
        self.episodes: list[_Episode | None] = [None] * self.num_workers
        self.memory_owner: tuple[int, int] | None = None  # (worker, generation) of the memory's open episode
        self.since_sync = 0
        self.produced = [False] * self.num_workers  # whether each worker returned a batch since its (re)start

    # ------------------------------------------------------------ requests
    def _publish(self) -> None:
        self.version += 1
        self.weights = self.pool.put_weights(acting_weights(self.agent))
        self.since_sync = 0

    def _remaining(self) -> int:
        return self.end_step - self.agent.step - sum(self.outstanding) - self.unstored

    def _request(self, index: int) -> bool:
        n = min(self.steps_per_sample, self._remaining())
        if n <= 0:
            return False
        fresh = self.worker_version[index] != self.version
        # Steps are numbered in the order they are asked for: those before nb_steps_random act at random.
        first = self.agent.step + sum(self.outstanding) + self.unstored
        nb_random = min(n, max(0, self.agent.nb_steps_random - first))
        self.pool.submit(index, n, self.weights if fresh else None, self.version, nb_random)
        self.worker_version[index] = self.version
        self.outstanding[index] += n
        return True

    def _failed(self, index: int, error: BaseException) -> None:
        failure = f"worker {index}: {_last_line(error)}"
        if self.restarts_left <= 0:
            raise RuntimeError(
                f"Rollout workers failed more often than max_worker_restarts allows. Last failure: {failure}"
            ) from error
        if not self.produced[index] and self.pool.generation[index] > 0:
            raise RuntimeError(
                "A restarted rollout worker failed again before returning any transition (a restart does not help: "
                f"check env_fn and the environment). Last failure: {failure}"
            ) from error
        self.restarts_left -= 1
        warnings.warn(f"Rollout worker {index} failed and is restarted ({_last_line(error)})", stacklevel=4)
        self.outstanding[index] = 0
        self.worker_version[index] = -1
        self.produced[index] = False
        self.episodes[index] = None  # its open episode is abandoned
        self.pool.restart(index)

    # ------------------------------------------------------------ storing and training
    def _store(self, batch: TransitionBatch, cbs: CallbackList, step_logs: bool) -> None:
        agent, memory = self.agent, self.agent.memory
        index = batch.worker
        self.produced[index] = True
        owner = (index, batch.generation)
        if self.memory_owner != owner or not batch.continues:
            if hasattr(memory, "end_episode"):
                memory.end_episode()  # the memory's open episode belongs to another worker (or ended)
        if not batch.continues:
            self.episodes[index] = None
        self.memory_owner = owner
        for t in range(len(batch)):
            if agent.step >= self.end_step or agent.stop_training:
                break
            episode = self.episodes[index]
            if episode is None:
                episode = self.episodes[index] = _Episode(agent.episode)
                agent.episode += 1
                cbs.on_episode_begin(episode.number)
                agent.reset_states()
            observation, next_observation = batch.observations[t], batch.next_observations[t]
            reward, terminal, truncated = float(batch.rewards[t]), bool(batch.terminals[t]), bool(batch.truncations[t])
            agent.recent_observation, agent.recent_action = observation, batch.actions[t]
            metrics = agent.backward(reward, terminal, truncated=truncated, next_observation=next_observation)
            if getattr(agent, "_scheduled", True) is not None:
                agent.forward(next_observation)  # runs the scheduled training (its action is not used)
            agent.step += 1
            self.since_sync += 1
            episode.reward += reward
            episode.steps += 1
            if step_logs:
                cbs.on_step_end(
                    episode.steps - 1,
                    {
                        "action": batch.actions[t],
                        "observation": next_observation,
                        "reward": reward,
                        "metrics": metrics,
                        "episode": episode.number,
                        "info": {},
                        "worker": index,
                    },
                )
            if terminal or truncated:
                self.episodes[index] = None
                cbs.on_episode_end(
                    episode.number,
                    {"episode_reward": episode.reward, "nb_episode_steps": episode.steps, "nb_steps": agent.step},
                )
        if self.since_sync >= self.weight_sync_interval:
            self._publish()

    # ------------------------------------------------------------ the run
    def run(self, callbacks: list | None, verbose: int, log_interval: int, synchronous: bool) -> Any:
        agent = self.agent
        logger: list = []
        if verbose == 1:
            logger = [TrainIntervalLogger(interval=log_interval)]
        elif verbose > 1:
            logger = [TrainEpisodeLogger()]
        history = keras.callbacks.History()
        cbs = CallbackList(logger + list(callbacks or []) + [history])
        cbs.set_model(agent)
        cbs.set_env(self.env)
        cbs.set_params({"nb_steps": self.nb_steps})
        step_logs = cbs.wants("on_step_end")
        self.end_step = agent.step + self.nb_steps
        did_abort = False
        agent._plan_run(self.end_step)
        agent._on_run_begin(True)
        agent._running = True
        agent.training = True
        agent.stop_training = False
        if hasattr(agent.memory, "end_episode"):
            agent.memory.end_episode()
        cbs.on_train_begin()
        try:
            self._publish()
            if synchronous:
                while agent.step < self.end_step and not agent.stop_training:
                    asked = [i for i in range(self.num_workers) if self._request(i)]
                    results = dict(self.pool.wait(all_pending=True))
                    for index in asked:  # in worker order, whatever order they finished in
                        result = results[index]
                        if isinstance(result, BaseException):
                            self._failed(index, result)
                        else:
                            self.outstanding[index] -= len(result)
                            self._store(result, cbs, step_logs)
            else:
                for index in range(self.num_workers):
                    self._request(index)
                while agent.step < self.end_step and not agent.stop_training:
                    for index, result in self.pool.wait(all_pending=False):
                        if isinstance(result, BaseException):
                            self._failed(index, result)
                            continue
                        # The worker's next request goes out first: it collects while this batch is stored.
                        self.outstanding[index] -= len(result)
                        self.unstored = len(result)
                        if not agent.stop_training:
                            self._request(index)
                        self._store(result, cbs, step_logs)
                        self.unstored = 0
                    for index in range(self.num_workers):  # restarted or idle workers get work again
                        if self.outstanding[index] == 0 and agent.step < self.end_step:
                            self._request(index)
        except KeyboardInterrupt:
            did_abort = True
        finally:
            if hasattr(agent.memory, "end_episode"):
                agent.memory.end_episode()
            agent.training = False
            agent._on_run_end(True)
            agent._running = False
        cbs.on_train_end({"did_abort": did_abort})
        agent.history = history
        return history
