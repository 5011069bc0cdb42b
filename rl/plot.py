"""Learning curves from `FileLogger` output: `plot_log(...)`, or `python -m rl.plot LOG.json`.

matplotlib is an optional dependency: `pip install -e ".[plot]"`. It is imported only when a
curve is drawn.

    python -m rl.plot ddpg_log.json                  # writes ddpg_log.png
    python -m rl.plot ddpg_log.json --out curve.png --window 20
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from rl.util import check_int, read_json

__all__ = ["plot_log"]

# FileLogger keys that are not metrics of the agent.
_EPISODE_KEYS = {"episode", "episode_reward", "nb_episode_steps", "nb_steps", "duration"}
_EVAL_KEYS = {"eval_step", "eval_mean_return", "eval_std_return", "best_mean_return"}


def _matplotlib() -> Any:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ImportError(
            "rl.plot needs matplotlib, an optional dependency: install it with `pip install -e '.[plot]'` "
            "(or `pip install matplotlib`)."
        ) from e
    return Figure, FigureCanvasAgg


def _floats(values: Sequence) -> np.ndarray:
    """A list from the JSON log as floats, `None` (a metric not computed) as NaN."""
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)


def _rolling_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Mean of each value and the `window - 1` before it (fewer at the start), NaN values left out."""
    finite = np.isfinite(values)
    sums = np.cumsum(np.where(finite, values, 0.0))
    counts = np.cumsum(finite)
    sums[window:] = sums[window:] - sums[:-window]
    counts[window:] = counts[window:] - counts[:-window]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def plot_log(
    path_or_data: str | os.PathLike | dict,
    out: str | os.PathLike | None = None,
    window: int = 10,
    title: str | None = None,
) -> Any:
    """Draws the learning curves of a `FileLogger` log.

    The first panel shows each episode's return against the training steps, with its rolling
    mean over `window` episodes, and the mean returns of `EvalCallback` evaluations (with their
    standard deviation) where the log has them. One panel follows per metric of the agent (for
    DDPG: `critic_loss`, `actor_loss`, `mean_q` and those given to `compile`): its per-episode mean and rolling mean,
    steps where it was not computed (warm-up) left out.

    Args:
        path_or_data: the JSON file `FileLogger` wrote, or the dict it holds (`FileLogger.data`).
        out: image file to write (its extension picks the format: `.png`, `.svg`, `.pdf`, ...),
            or `None` to only return the figure. Defaults to `None`.
        window: episodes in the rolling mean, >= 1. Defaults to `10`.
        title: the figure's title, or `None` for the file name (no title for a dict). Defaults to
            `None`.

    Returns:
        The `matplotlib.figure.Figure` (drawn with matplotlib's Agg renderer, whatever the
        pyplot backend).

    Raises:
        ImportError: if matplotlib is not installed (`pip install -e ".[plot]"`).
        ValueError: if the log is missing, unreadable, or not `FileLogger` output.
        TypeError: if `path_or_data` is neither a path nor a dict.

    Example:

    ```python
    agent.fit(env, nb_steps=20_000, callbacks=[FileLogger("ddpg_log.json")])
    plot_log("ddpg_log.json", out="ddpg_curve.png")
    ```
    """
    window = check_int("window", window, minimum=1)
    if isinstance(path_or_data, dict):
        data = path_or_data
    elif isinstance(path_or_data, (str, os.PathLike)):
        data = read_json(path_or_data, what="log file")
        if title is None:
            title = os.path.basename(os.fspath(path_or_data))
    else:
        raise TypeError(
            f"`path_or_data` must be a FileLogger JSON path or its dict. Received: path_or_data={path_or_data!r}"
        )
    if not isinstance(data, dict) or not isinstance(data.get("episode_reward"), list):
        keys = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"The log is not FileLogger output: it has no `episode_reward` list. Received keys: {keys}")
    Figure, FigureCanvasAgg = _matplotlib()

    returns = _floats(data["episode_reward"])
    steps = data.get("nb_steps")
    if isinstance(steps, list) and len(steps) == len(returns):
        x, xlabel = _floats(steps), "training steps"
    else:
        x, xlabel = np.arange(1, len(returns) + 1, dtype=np.float64), "episode"
    metrics = [
        key
        for key, values in data.items()
        if key not in _EPISODE_KEYS | _EVAL_KEYS and isinstance(values, list) and len(values) == len(returns)
    ]

    fig = Figure(figsize=(8, 2.2 + 1.8 * len(metrics)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1 + len(metrics), 1, sharex=True, squeeze=False)[:, 0]
    ax = axes[0]
    ax.plot(x, returns, color="tab:blue", alpha=0.3, linewidth=1, label="episode return")
    ax.plot(x, _rolling_mean(returns, window), color="tab:blue", linewidth=2, label=f"rolling mean ({window})")
    if data.get("eval_step") and data.get("eval_mean_return"):
        eval_x, eval_mean = _floats(data["eval_step"]), _floats(data["eval_mean_return"])
        std = data.get("eval_std_return")
        eval_std = _floats(std) if isinstance(std, list) and len(std) == len(eval_mean) else None
        ax.errorbar(
            eval_x, eval_mean, yerr=eval_std, color="tab:orange", marker="o", capsize=3, label="eval mean return"
        )
    ax.set_ylabel("return")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    for ax, key in zip(axes[1:], metrics):
        values = _floats(data[key])
        ax.plot(x, values, color="tab:green", alpha=0.3, linewidth=1)
        ax.plot(x, _rolling_mean(values, window), color="tab:green", linewidth=2)
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel(xlabel)
    if title:
        fig.suptitle(title)
    if out is not None:
        fig.savefig(os.fspath(out), dpi=100)
    return fig


def main(argv: Sequence[str] | None = None) -> str:
    """The command line: `python -m rl.plot LOG.json [--out curve.png] [--window N]`.

    Args:
        argv: the arguments, or `None` for `sys.argv[1:]`. Defaults to `None`.

    Returns:
        The path of the image written (by default the log's path with `.png` in place of `.json`).
    """
    parser = argparse.ArgumentParser(
        prog="python -m rl.plot", description="Draws learning curves from a FileLogger log."
    )
    parser.add_argument("log", help="the JSON file written by rl.callbacks.FileLogger")
    parser.add_argument("--out", help="image to write (default: the log's name with .png)")
    parser.add_argument("--window", type=int, default=10, help="episodes in the rolling mean (default: 10)")
    parser.add_argument("--title", help="the figure's title (default: the log's file name)")
    args = parser.parse_args(argv)
    out = args.out or os.path.splitext(args.log)[0] + ".png"
    plot_log(args.log, out=out, window=args.window, title=args.title)
    print(f"Wrote {out}")
    return out


if __name__ == "__main__":
    main()
