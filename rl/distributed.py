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

Ray is an optional dependency (`pip install -e ".[ray]"`), imported only by this module when
a run uses it. `backend="inprocess"` runs the same workers in the calling process, one after the
other, without Ray: for tests, debugging, and machines without Ray.
"""

from __future__ import annotations

import copy
import socket
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np

from rl.loops.workers import InProcessPool, RolloutWorker, TransitionBatch, WorkerLearner
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
        agent: a built `rl.agents.off_policy.OffPolicyAgent` whose `check_env` has seen the
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
        if agent.input_shapes is None:
            raise ValueError(
                "The agent has not seen an environment yet: call `agent.check_env(env)` (fit does) before building "
                f"its acting policy. Received: agent={agent!r}"
            )
        acting = agent.policy_models()[0]
        self.role = next(role for role, model in agent.models.items() if model is acting)
        self.agent_class = type(agent)
        self.model_config = keras.saving.serialize_keras_object(acting)
        self.custom_objects = dict(agent.custom_model_objects)
        self.weights = [np.array(w) for w in acting_weights(agent)]
        self.settings = agent.acting_settings()
        self.random_process = copy.deepcopy(agent.random_process)
        self.processor = agent.processor
        self.window_length = int(agent.window_length)
        self.low, self.high = agent.action_bounds
        self.input_shapes = [tuple(s) for s in agent.input_shapes]
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

        from rl.engine import CompiledFunctions, FlatWeights, Nets, SeedStream, flat_layout_fits
        from rl.engine.inputs import acting_fields, model_input
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
        fields = acting_fields(self.input_shapes)

        def build(training: bool) -> Callable:
            def act(flat: tf.Tensor) -> tf.Tensor:
                x = model_input(fields.unpack(flat)["state"])
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
        from rl.engine.inputs import pack_states, process_states

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
        flat = pack_states(process_states(self.processor, state))
        action = functions.call(Signature("act", training, flat.shape[0]), lambda: build(training), flat, False)
        if training and self.random_process is not None:
            action = (action + self.random_process.sample()).astype(np.float32)
        if self.low is not None:
            action = np.minimum(np.maximum(action, self.low), self.high)
        return action


def _check_acts_with_act_graph(agent: Any) -> None:
    """Raises a TypeError if the agent picks actions otherwise than `act_graph` plus noise (e.g. DQN's policies)."""
    from rl.agents.off_policy import OffPolicyAgent

    if getattr(type(agent), "finish_action", None) is not getattr(OffPolicyAgent, "finish_action", None):
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
    agent.sync_models()
    return agent.policy_models()[0].get_weights()


# ------------------------------------------------------------------ workers
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


class _RayWorker:
    """A `RolloutWorker` inside a Ray actor process, limited to one CPU thread.

    It holds the worker rather than subclassing it: Ray rewrites the signature of every method of
    an actor class, inherited ones included, which would change `RolloutWorker`'s own methods in
    the driver process (as `inspect.signature` and `help` show them).
    """

    def __init__(self, *args: Any):
        import tensorflow as tf

        try:  # this process is the worker's own: one thread for TensorFlow's ops
            tf.config.threading.set_intra_op_parallelism_threads(1)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:
            pass
        self.worker = RolloutWorker(*args)

    def sample(self, *args: Any) -> TransitionBatch:
        return self.worker.sample(*args)


# ------------------------------------------------------------------ Ray
def _import_ray() -> Any:
    try:
        import ray
    except ImportError as e:
        raise ImportError(
            'rl.distributed needs Ray: install the `ray` extra with `pip install -e ".[ray]"` (or '
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
    agent.check_env(env)
    if agent.input_shapes is None:  # with a processor, the shapes come from a processed first observation
        observation = env.reset(seed=seed)[0]
        if agent.processor is not None:
            observation = agent.processor.process_observation(observation)
        agent.prepare_inputs(observation)
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

        pool = InProcessPool(make_worker, num_workers)
        synchronous = True
    try:
        return WorkerLearner(
            agent, pool, env, nb_steps, steps_per_sample, weight_sync_interval, max_worker_restarts
        ).run(callbacks, verbose, log_interval, synchronous)
    finally:
        pool.close()
        if started_ray:
            ray.shutdown()
        close = getattr(env, "close", None)
        if callable(close):
            close()
