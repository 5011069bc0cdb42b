"""Offline recommendation with DDPG / TD3+BC: learn from logged ratings, recommend from a large catalogue.

The actor outputs a vector in item-vector space (a continuous "proto-action"); the recommended
item is the catalogue item with the highest inner product with it among those the user has not seen
yet, or, with --candidates K, the one the critic values most among the K nearest. Training uses the
logged ratings only; the learned policy is then compared on a seeded simulator of users with a
random, a popularity and the logging policy.

python examples/ddpg_recommendation.py                       # simulated logs, 10 000 items, seed 0
python examples/ddpg_recommendation.py --seed 1 --steps 6000
python examples/ddpg_recommendation.py --ratings ratings.csv # your own logs: user_id,item_id,rating,timestamp
python examples/ddpg_recommendation.py --ratings ratings.csv --encoding latin-1  # a file not in UTF-8
python examples/ddpg_recommendation.py --items 1000000 --users 30000 --steps 3000 --embedding-dim 0 \
    --min-ratings 10 --candidates 50 --latency              # a million items; keras-rl3[recsys] for faiss

Without --ratings, the simulator's logs are written to --write-ratings (default
simulated_ratings.csv) and read back from there, so both paths train on the same kind of file.
Ids are integers within int64 and are read exactly (2**53 and 2**53 + 1 are two users). The file is
read as UTF-8 unless --encoding names its encoding (latin-1, cp1252, utf-16, ...).
"""

from __future__ import annotations

import argparse
import array
import codecs
import io
import math
import os
import re
import time
import warnings
from typing import Any, NamedTuple

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from gymnasium.spaces import Box  # noqa: E402
from keras import layers  # noqa: E402

import rl.agents  # noqa: E402
from rl.memory import SequentialMemory  # noqa: E402

RECENT_LIKES = 10  # the state averages the vectors of the last RECENT_LIKES liked, and disliked, items
DISLIKE_SCALE = 0.1  # the state's last entry: dislikes so far in the session, times this
GAMMA = 0.5  # sessions are short; a longer horizon makes offline critics drift (see docs/recommendation.md)


# ----------------------------------------------------------------------------- the simulator
class Simulator:
    """Seeded latent-factor users and catalogue, with a logging policy to write logs from.

    Each user `u` and item `i` has hidden factors; item `i` also has a quality `q_i`. Shown item `i`,
    user `u` rates it `clip(round(3 + f_u . f_i / sqrt(dim) + q_i + noise), 1, 5)`. A session lasts at
    most `session_length` recommendations; the user leaves after `patience` ratings below `positive`.
    The logging policy is an old "trending" recommender: with probability `logging_epsilon` a
    uniformly random item, otherwise an item drawn by its exposure weight (heavy-tailed, correlated
    with quality, blind to the user).

    Args:
        nb_items: catalogue size.
        nb_users: number of users.
        seed: seed of the hidden factors (the logs and evaluations take their own seeds).
        dim: hidden factor size. Defaults to `8`.
        session_length: most recommendations per session. Defaults to `20`.
        patience: ratings below `positive` after which the user leaves the session. Defaults to `4`.
        positive: a rating at least this is a like (reward 1). Defaults to `4`.
        logging_epsilon: the logging policy's share of uniformly random items. Defaults to `0.3`.
    """

    def __init__(
        self,
        nb_items: int,
        nb_users: int,
        seed: int,
        dim: int = 8,
        session_length: int = 20,
        patience: int = 4,
        positive: float = 4.0,
        logging_epsilon: float = 0.3,
    ):
        rng = np.random.default_rng([seed, 7919])
        self.nb_items, self.nb_users, self.dim = nb_items, nb_users, dim
        self.session_length, self.patience, self.positive = session_length, patience, positive
        self.logging_epsilon = logging_epsilon
        self.item_factors = rng.standard_normal((nb_items, dim), dtype=np.float32) / np.float32(dim**0.25)
        self.user_factors = rng.standard_normal((nb_users, dim), dtype=np.float32) / np.float32(dim**0.25)
        self.quality = (0.3 * rng.standard_normal(nb_items)).astype(np.float32)
        exposure = np.exp(2.0 * self.quality + rng.standard_normal(nb_items))
        self._exposure_cdf = np.cumsum(exposure / exposure.sum())

    def rate(self, users: np.ndarray, items: np.ndarray, noise: np.ndarray) -> np.ndarray:
        """Ratings (1-5) of `items` by `users` (same shapes), with standard normal `noise`."""
        affinity = np.einsum("nd,nd->n", self.user_factors[users], self.item_factors[items])
        return np.clip(np.rint(3.0 + affinity + self.quality[items] + 0.5 * noise), 1, 5)

    def logging_items(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """`n` items drawn by the logging policy (repeats possible; the caller skips seen ones)."""
        by_exposure = np.searchsorted(self._exposure_cdf, rng.random(n) * self._exposure_cdf[-1])
        uniform = rng.integers(0, self.nb_items, n)
        return np.where(rng.random(n) < self.logging_epsilon, uniform, np.minimum(by_exposure, self.nb_items - 1))


class SessionResult(NamedTuple):
    users: np.ndarray  # [n] one row per recommendation shown
    items: np.ndarray  # [n]
    ratings: np.ndarray  # [n]
    steps: np.ndarray  # [n] the recommendation's position in its session
    session_rewards: np.ndarray  # [S] likes per session
    session_lengths: np.ndarray  # [S]


def run_sessions(
    sim: Simulator,
    users: np.ndarray,
    choose: Any,
    seen: list[set],
    seed: int,
    on_rating: Any = None,
) -> SessionResult:
    """Plays one session per user, all users at once.

    `choose(active) -> items` picks one item for each active user (indices into `users`), never one
    in `seen`. Ratings noise comes from `seed` per (user, step), so policies compared with the same
    seed meet the same users in the same moods. `seen` is updated; `on_rating(active, items, liked)`
    is told each step's outcome (to update states).
    """
    n, length = len(users), sim.session_length
    noise = np.random.default_rng([seed, 31]).standard_normal((n, length)).astype(np.float32)
    dislikes = np.zeros(n, dtype=np.int64)
    active = np.arange(n)
    rewards, lengths = np.zeros(n), np.zeros(n, dtype=np.int64)
    logged: list[tuple] = []
    for t in range(length):
        if not active.size:
            break
        items = np.asarray(choose(active), dtype=np.int64)
        ratings = sim.rate(users[active], items, noise[active, t])
        liked = ratings >= sim.positive
        for row, item in zip(active, items):
            seen[row].add(int(item))
        logged.append((users[active], items, ratings, np.full(active.size, t)))
        rewards[active] += liked
        lengths[active] += 1
        dislikes[active] += ~liked
        if on_rating is not None:
            on_rating(active, items, liked)
        active = active[dislikes[active] < sim.patience]
    cat = [np.concatenate(parts) for parts in zip(*logged)]
    return SessionResult(*cat, rewards, lengths)


def simulate_logs(sim: Simulator, sessions_per_user: int, seed: int) -> tuple[np.ndarray, ...]:
    """Sessions of every user under the logging policy: `(user_ids, item_ids, ratings, timestamps)`.

    Ids start at 1 as in MovieLens. Within a session ratings are a minute apart; sessions are days apart.
    """
    rng = np.random.default_rng([seed, 104729])
    users = np.arange(sim.nb_users)
    seen: list[set] = [set() for _ in users]

    def logging_choice(active: np.ndarray) -> np.ndarray:
        items = sim.logging_items(active.size, rng)
        for k, row in enumerate(active):  # redraw the (rare) items a user has already rated
            while int(items[k]) in seen[row]:
                items[k] = sim.logging_items(1, rng)[0]
        return items

    parts = []
    start = 1_600_000_000 + rng.integers(0, 86_400, sim.nb_users)
    for s in range(sessions_per_user):
        result = run_sessions(sim, users, logging_choice, seen, seed=seed * 1000 + s)
        stamps = start[result.users] + s * 86_400 * 3 + 60 * result.steps
        parts.append((result.users + 1, result.items + 1, result.ratings, stamps))
    return tuple(np.concatenate(p) for p in zip(*parts))


# ----------------------------------------------------------------------------- the CSV files
COLUMNS = ("user_id", "item_id", "rating", "timestamp")
ID_RANGE = (-(2**63), 2**63 - 1)  # ids are read as int64, exactly: never through a float
_ROW = np.dtype([("user_id", np.int64), ("item_id", np.int64), ("rating", np.float64), ("timestamp", np.float64)])
_INTEGER = re.compile(r"\s*([+-]?[0-9]+)(?:\.0*)?\s*")  # "12", "-3", and "12.0" (pandas writes ids so)


def write_ratings_csv(
    path: str,
    user_ids: np.ndarray,
    item_ids: np.ndarray,
    ratings: np.ndarray,
    stamps: np.ndarray,
    encoding: str = "utf-8",
):
    """Writes ratings in MovieLens' layout: a header, then `user_id,item_id,rating,timestamp` rows.

    Rows are sorted by user, then time. Ids are written as the integers given (never through a float).
    """
    columns = [np.asarray(c) for c in (user_ids, item_ids, ratings, stamps)]
    order = np.lexsort((columns[3], columns[0]))
    rows = zip(*(c[order].tolist() for c in columns))
    with open(path, "w", encoding=encoding, newline="\n") as f:
        f.write(",".join(COLUMNS) + "\n")
        f.writelines(f"{u:d},{i:d},{r:g},{int(t)}\n" for u, i, r, t in rows)  # ids must be integers


class Ratings(NamedTuple):
    """Logged ratings with dense indices: `user[k]`, `item[k]` index `user_ids`, `item_ids`."""

    user: np.ndarray
    item: np.ndarray
    rating: np.ndarray
    timestamp: np.ndarray
    user_ids: np.ndarray  # the file's id of each user index
    item_ids: np.ndarray  # the file's id of each item index


def read_ratings_csv(path: str, catalogue_ids: np.ndarray | None = None, encoding: str = "utf-8") -> Ratings:
    """Reads `user_id,item_id,rating,timestamp` rows (MovieLens' ratings.csv, or u.data with tabs).

    A first line that is not numbers is taken as the header. Ids are integers in int64's range, read
    exactly (never through a float: 2**53 and 2**53 + 1 are two users); ratings and timestamps finite
    numbers.

    Args:
        path: the file.
        catalogue_ids: the ids of the whole catalogue (the default is the ids that occur in the file).
        encoding: the file's text encoding. Defaults to `"utf-8"`.

    Returns:
        A `Ratings` with the rows in file order.

    Raises:
        ValueError: naming the file, and the line where there is one, when the file is not text in
            `encoding`, is empty, a row does not have four fields, a field is not a number, an id is
            not an integer or is outside int64, or a rating or timestamp is not finite; when an item
            is not in `catalogue_ids`; or when `encoding` is not a text encoding.
    """
    if not _is_text_encoding(encoding):
        raise ValueError(f"encoding must be a text encoding Python knows. Received: encoding={encoding!r}")
    try:
        with open(path, encoding=encoding) as f:
            first = f.readline()
    except UnicodeDecodeError:
        raise ValueError(_decoding_error(path, encoding)) from None
    if not first.strip():
        raise ValueError(f"{path}: the file is empty; expected rows of {','.join(COLUMNS)}")
    delimiter = "\t" if "\t" in first else ","
    skip = 0 if _numbers(first, delimiter) else 1
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data": refused below
            # Older numpy parses an int64 field that is not an integer through a float, with this warning:
            # as an error, it sends such files (ids beyond int64, ids like 1e3) to the exact reading below.
            warnings.simplefilter("error", DeprecationWarning)
            table = np.loadtxt(path, delimiter=delimiter, skiprows=skip, dtype=_ROW, ndmin=1, encoding=encoding)
    except (ValueError, DeprecationWarning):  # a UnicodeDecodeError is a ValueError too
        table = _read_rows(path, delimiter, skip, encoding)  # field by field; raises naming the first bad line
    if table.size == 0:
        raise ValueError(f"{path}: no rating rows after the header line; expected rows of {','.join(COLUMNS)}")
    for name in COLUMNS[2:]:
        bad = np.flatnonzero(~np.isfinite(table[name]))
        if bad.size:
            raise ValueError(
                f"{path}, line {bad[0] + skip + 1}: {name} must be a finite number. "
                f"Received: {name}={table[name][bad[0]]:g}"
            )
    users, items = table["user_id"], table["item_id"]
    user_ids, user = np.unique(users, return_inverse=True)
    if catalogue_ids is None:
        item_ids, item = np.unique(items, return_inverse=True)
    else:
        item_ids = np.asarray(catalogue_ids, dtype=np.int64)
        item = np.searchsorted(item_ids, items)
        unknown = np.flatnonzero((item >= len(item_ids)) | (item_ids[np.minimum(item, len(item_ids) - 1)] != items))
        if unknown.size:
            raise ValueError(
                f"{path}, line {unknown[0] + skip + 1}: item_id {int(items[unknown[0]])} is not in the catalogue"
            )
    return Ratings(user, item, table["rating"].astype(np.float32), table["timestamp"], user_ids, item_ids)


def _is_text_encoding(encoding: str) -> bool:
    """Whether `open(..., encoding=encoding)` accepts it (a known codec, and one between bytes and text)."""
    try:
        io.TextIOWrapper(io.BytesIO(), encoding=encoding)
    except LookupError:
        return False
    return True


def _numbers(line: str, delimiter: str) -> bool:
    try:
        [float(x) for x in line.strip().split(delimiter)]
    except ValueError:
        return False
    return True


def _read_rows(path: str, delimiter: str, skip: int, encoding: str) -> np.ndarray:
    """The rows np.loadtxt refused, read field by field, ids as Python integers (only on failure).

    Returns them (ids written like `12.0` are read here) or raises a ValueError naming the first bad
    line. Lines are taken as np.loadtxt takes them: `#` starts a comment, blank lines are skipped.
    """
    columns = [array.array("q"), array.array("q"), array.array("d"), array.array("d")]
    first_row = None  # (line number, text) of the first row, when it does not have 4 fields
    widths: set[int] = set()  # then, the numbers of fields of all rows
    try:
        with open(path, encoding=encoding) as f:
            for number, line in enumerate(f, start=1):
                text = line.split("#", 1)[0].strip()
                if number <= skip or not text:
                    continue
                fields = text.split(delimiter)
                if first_row is None and len(fields) != 4 and not columns[0]:
                    first_row = (number, text)
                if first_row is not None:  # only the numbers of fields matter now
                    widths.add(len(fields))
                    continue
                if len(fields) != 4:
                    raise ValueError(_wrong_width(path, number, text, delimiter))
                for k, (column, name, value) in enumerate(zip(columns, COLUMNS, fields)):
                    column.append((_parse_id if k < 2 else _parse_number)(path, number, name, value))
    except UnicodeDecodeError:
        raise ValueError(_decoding_error(path, encoding)) from None
    if first_row is not None:
        if len(widths) == 1:
            raise ValueError(
                f"{path}: rows have {widths.pop()} fields; expected 4 ({','.join(COLUMNS)}, MovieLens' layout)"
            )
        raise ValueError(_wrong_width(path, *first_row, delimiter))
    table = np.empty(len(columns[0]), dtype=_ROW)
    for column, name in zip(columns, COLUMNS):
        table[name] = np.frombuffer(column, dtype=table.dtype[name]) if column else []
    return table


def _wrong_width(path: str, number: int, text: str, delimiter: str) -> str:
    return (
        f"{path}, line {number}: expected 4 fields ({','.join(COLUMNS)}) separated by {delimiter!r}. Received: {text!r}"
    )


def _parse_id(path: str, number: int, name: str, value: str) -> int:
    """An id field as an exact integer in int64's range, or a ValueError naming the file, line and value."""
    match = _INTEGER.fullmatch(value)
    if match is None:
        try:
            float(value)
        except ValueError:
            raise ValueError(f"{path}, line {number}: {name} is not a number. Received: {name}={value!r}") from None
        raise ValueError(f"{path}, line {number}: {name} must be an integer. Received: {name}={value.strip()}")
    digits = match.group(1)
    parsed = int(digits) if len(digits.lstrip("+-").lstrip("0")) <= 19 else None  # int() refuses 4301 digits
    if parsed is None or not ID_RANGE[0] <= parsed <= ID_RANGE[1]:
        shown = value.strip() if len(value.strip()) <= 40 else f"{value.strip()[:30]}... ({len(digits)} digits)"
        raise ValueError(
            f"{path}, line {number}: {name} must be in int64's range [-2**63, 2**63 - 1]. Received: {name}={shown}"
        )
    return parsed


def _parse_number(path: str, number: int, name: str, value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{path}, line {number}: {name} is not a number. Received: {name}={value!r}") from None


def _decoding_error(path: str, encoding: str) -> str:
    """Where the file stops being `encoding` text (only on failure: reads the file again, line by line)."""
    decoder = codecs.getincrementaldecoder(encoding)()
    advice = "pass the file's encoding with --encoding, e.g. --encoding latin-1"
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                decoder.decode(raw)
            except UnicodeDecodeError as e:
                bad = e.object[e.start : e.end]
                return f"{path}, line {number}: not {encoding} text ({e.reason}); {advice}. Received: bytes {bad!r}"
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as e:
            return f"{path}: not {encoding} text (it ends inside a character: {e.reason}); {advice}"
    return f"{path}: not {encoding} text; {advice}"


# ----------------------------------------------------------------------------- item embeddings
def factorize(
    ratings: Ratings, nb_items: int, dim: int = 16, reg: float = 5.0, iterations: int = 6, seed: int = 0
) -> np.ndarray:
    """Item embeddings `[nb_items, dim + 1]` from the logged ratings, by alternating least squares.

    Fits `rating ~ mean + b_i + p_u . q_i` with L2 penalty `reg` on every user and item parameter;
    returns `[q_i, b_i]`, so that the inner product with a query `[x, w]` is `x . q_i + w * b_i`.
    Items with no rating get zeros. With `dim=0` only the biases `b_i` are fitted (one ridge step).
    """
    rng = np.random.default_rng([seed, 15485863])
    nb_users = len(ratings.user_ids)
    centred = (ratings.rating - ratings.rating.mean()).astype(np.float64)
    q = 0.1 * rng.standard_normal((nb_items, dim))
    b = np.zeros(nb_items)
    p = np.zeros((nb_users, dim))
    by_user = _groups(ratings.user, nb_users)
    by_item = _groups(ratings.item, nb_items)
    for _ in range(iterations if dim else 1):
        # Users: p_u = argmin sum_i (r_ui - b_i - p_u . q_i)^2 + reg |p_u|^2
        if dim:
            p = _ridge(q[ratings.item], centred - b[ratings.item], by_user, reg)
        # Items: [q_i, b_i] = argmin sum_u (r_ui - [p_u, 1] . [q_i, b_i])^2 + reg |[q_i, b_i]|^2
        design = np.column_stack([p[ratings.user], np.ones(len(centred))])
        qb = _ridge(design, centred, by_item, reg)
        q, b = qb[:, :dim], qb[:, dim]
    return np.column_stack([q, b]).astype(np.float32)


def standardize(embeddings: np.ndarray) -> np.ndarray:
    """Scales each coordinate to unit standard deviation over the items with an embedding.

    The actions are embeddings, so this sets their scale: TD3+BC's behaviour-cloning term
    `mean((pi(s) - a)^2)` is then comparable with its Q term, as for actions in `[-1, 1]`. Inner
    products change with the scaling only by a fixed weight per coordinate, which the actor absorbs.
    """
    rated = np.abs(embeddings).sum(axis=1) > 0
    scale = embeddings[rated].std(axis=0) if rated.sum() > 1 else np.ones(embeddings.shape[1])
    return (embeddings / np.where(scale > 0, scale, 1.0)).astype(np.float32)


def item_vectors(ratings: Ratings, nb_items: int, dim: int = 16, seed: int = 0, count: bool = True) -> np.ndarray:
    """Each item's vector `[q_i, b_i, log(1 + n_i)]`, standardised: `[nb_items, dim + 2]`.

    `[q_i, b_i]` come from `factorize`; `n_i` is the item's number of logged ratings (how often the
    logging policy showed it), a feature whose worth the critic learns from the logged rewards;
    `count=False` leaves it out (`[nb_items, dim + 1]`). Items never rated get zeros.

    Args:
        ratings: the logged ratings to learn from.
        nb_items: the catalogue size.
        dim: ALS factors per item (0: the bias only). Defaults to `16`.
        seed: seed of the factors' initialisation. Defaults to `0`.
        count: whether to add the log rating count. Defaults to `True`.

    Returns:
        `[nb_items, dim + 2]` (or `dim + 1`) float32 vectors.
    """
    vectors = factorize(ratings, nb_items, dim=dim, seed=seed)
    if count:
        vectors = np.column_stack([vectors, np.log1p(np.bincount(ratings.item, minlength=nb_items))])
    return standardize(vectors)


def _groups(index: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The rows sorted by `index`, and where each of the `n` groups starts (length n + 1)."""
    order = np.argsort(index, kind="stable")
    return order, np.searchsorted(index[order], np.arange(n + 1))


def _ridge(x: np.ndarray, y: np.ndarray, groups: tuple[np.ndarray, np.ndarray], reg: float) -> np.ndarray:
    """Per group g: argmin_w sum_rows (y - x . w)^2 + reg |w|^2 (zeros for empty groups), in chunks of groups."""
    order, starts = groups
    n, d = len(starts) - 1, x.shape[1]
    out = np.zeros((n, d))
    rows_per_chunk = max(1, 4_000_000 // (d * d))  # bounded memory at a million items
    nonempty = np.flatnonzero(starts[1:] > starts[:-1])
    lo_group = 0
    while lo_group < len(nonempty):
        # Up to 20 000 groups with rating rows, and about rows_per_chunk rows (at least one group).
        first_row = starts[nonempty[lo_group]]
        hi_group = int(np.searchsorted(starts[nonempty + 1], first_row + rows_per_chunk, side="right"))
        hi_group = min(max(hi_group, lo_group + 1), lo_group + 20_000)
        chunk = nonempty[lo_group:hi_group]
        begin, end = starts[chunk], starts[chunk + 1]
        lengths = end - begin  # the groups' rows, in group order:
        rows = order[np.arange(lengths.sum()) + np.repeat(begin - np.r_[0, np.cumsum(lengths)[:-1]], lengths)]
        xs = x[rows].astype(np.float32)
        terms = np.empty((len(rows), d * d + d), dtype=np.float32)  # per row: x x^T, then x y
        np.multiply(xs[:, :, None], xs[:, None, :], out=terms[:, : d * d].reshape(-1, d, d))
        np.multiply(xs, y[rows, None], out=terms[:, d * d :])
        sums = np.add.reduceat(terms, np.r_[0, np.cumsum(lengths)[:-1]], axis=0)  # [groups, d*d + d]
        a = sums[:, : d * d].reshape(-1, d, d).astype(np.float64) + reg * np.eye(d)
        out[chunk] = np.linalg.solve(a, sums[:, d * d :, None].astype(np.float64))[..., 0]
        lo_group = hi_group
    return out


# ----------------------------------------------------------------------------- states
def state_dim(embeddings: np.ndarray) -> int:
    """The state's size: two means of item embeddings (liked, disliked), then the session's dislikes."""
    return 2 * embeddings.shape[1] + 1


class StateTracker:
    """Users' states while they are recommended to: what they liked and disliked lately.

    State of a user: `[mean of the embeddings of their last RECENT_LIKES liked items, mean of the
    embeddings of their last RECENT_LIKES disliked items (zeros when none), DISLIKE_SCALE * dislikes
    so far in this session]`, the same as `logged_states` computes from logs.
    """

    def __init__(self, embeddings: np.ndarray, nb_users: int):
        self.embeddings = embeddings
        self.recent = np.zeros((2, nb_users, RECENT_LIKES, embeddings.shape[1]), dtype=np.float32)
        self.count = np.zeros((2, nb_users), dtype=np.int64)  # [0]: likes, [1]: dislikes, ever
        self.dislikes = np.zeros(nb_users, dtype=np.int64)  # in this session

    def observe(self, rows: np.ndarray, items: np.ndarray, liked: np.ndarray) -> None:
        for kind, mask in enumerate((liked, ~liked)):
            r = rows[mask]
            self.recent[kind, r, self.count[kind, r] % RECENT_LIKES] = self.embeddings[items[mask]]
            self.count[kind, r] += 1

    def observe_in_session(self, rows: np.ndarray, items: np.ndarray, liked: np.ndarray) -> None:
        self.observe(rows, items, liked)
        self.dislikes[rows] += ~liked

    def states(self, rows: np.ndarray) -> np.ndarray:
        n = np.minimum(self.count[:, rows], RECENT_LIKES)[:, :, None]
        means = self.recent[:, rows].sum(axis=2) / np.maximum(n, 1)
        return np.column_stack([means[0], means[1], DISLIKE_SCALE * self.dislikes[rows]]).astype(np.float32)


class LoggedSteps(NamedTuple):
    """The logs as transitions: row k is the k-th rating in (user, time) order."""

    order: np.ndarray  # the rows of `Ratings` in that order
    observations: np.ndarray  # [N, state_dim] the user's state before the rating
    actions: np.ndarray  # [N, embedding_dim] the rated item's embedding
    rewards: np.ndarray  # [N] 1.0 for a like
    terminals: np.ndarray  # [N] the session's last rating (the user left)


def split_sessions(ratings: Ratings, session_gap: float, session_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Orders the ratings by (user, timestamp) and returns `(order, session_start)`.

    A session starts at a user's first rating, after a gap of more than `session_gap` seconds, and
    after `session_length` ratings.
    """
    order = np.lexsort((np.arange(len(ratings.user)), ratings.timestamp, ratings.user))
    user, stamp = ratings.user[order], ratings.timestamp[order]
    start = np.ones(len(order), dtype=bool)
    start[1:] = (user[1:] != user[:-1]) | (stamp[1:] - stamp[:-1] > session_gap)
    session = np.cumsum(start) - 1
    first = np.flatnonzero(start)
    position = np.arange(len(order)) - first[session]
    start |= position % session_length == 0  # long sessions are cut into session_length pieces
    return order, start


def logged_states(
    ratings: Ratings, embeddings: np.ndarray, positive: float, session_gap: float, session_length: int
) -> LoggedSteps:
    """The state before each logged rating, computed for all rows at once (see `StateTracker`)."""
    order, start = split_sessions(ratings, session_gap, session_length)
    user, item = ratings.user[order], ratings.item[order]
    liked = ratings.rating[order] >= positive
    means = [_recent_mean(user, embeddings[item], mask) for mask in (liked, ~liked)]
    # Dislikes so far in the session.
    session = np.cumsum(start) - 1
    disliked = (~liked).astype(np.int64)
    cum = np.cumsum(disliked) - disliked
    dislikes = cum - cum[np.flatnonzero(start)][session]
    observations = np.column_stack([*means, DISLIKE_SCALE * dislikes]).astype(np.float32)
    terminals = np.r_[start[1:], True]
    return LoggedSteps(order, observations, embeddings[item], liked.astype(np.float32), terminals)


def _recent_mean(user: np.ndarray, vectors: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per row k: the mean of `vectors` over the user's last RECENT_LIKES rows before k where `mask` holds.

    Rows are sorted by user; computed for all rows at once from prefix sums over the masked rows.
    """
    prefix = np.zeros((int(mask.sum()) + 1, vectors.shape[1]), dtype=np.float64)
    np.cumsum(vectors[mask], axis=0, out=prefix[1:])
    before = np.cumsum(mask) - mask  # masked rows before row k (all users)
    new_user = np.r_[True, user[1:] != user[:-1]]
    first_of_row = before[new_user][np.cumsum(new_user) - 1]  # masked rows before the user's first row
    count = before - first_of_row
    low = np.maximum(before - RECENT_LIKES, first_of_row)
    return (prefix[before] - prefix[low]) / np.maximum(np.minimum(count, RECENT_LIKES), 1)[:, None]


# ----------------------------------------------------------------------------- retrieval
class ItemIndex:
    """Top-k catalogue items by inner product with query vectors, skipping each query's seen items.

    `backend="numpy"` searches exactly, in blocks of items (memory bounded at any catalogue size);
    `"faiss"` uses a faiss index (exact `IndexFlatIP` up to 200 000 items; above that an
    inverted-file index `IndexIVFFlat` searched over 256 lists, approximate, on vectors with one
    coordinate added so that the nearest one has the largest inner product), needs
    `pip install -e ".[recsys]"`.

    Args:
        embeddings: `[nb_items, dim]` item vectors.
        backend: `"numpy"` or `"faiss"`.
        seed: seed of faiss' clustering (inverted-file index only).
        items: the catalogue items that may be returned (the default is all); results are catalogue items.
    """

    def __init__(self, embeddings: np.ndarray, backend: str = "numpy", seed: int = 0, items: Any = None):
        self.embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        self.backend = backend
        self.index = None
        self.items = None if items is None else np.asarray(items, dtype=np.int64)
        self.vectors = self.embeddings if self.items is None else self.embeddings[self.items]
        self._position = None  # catalogue item -> row of self.vectors (-1: not searched)
        if self.items is not None:
            self._position = np.full(len(self.embeddings), -1, dtype=np.int64)
            self._position[self.items] = np.arange(len(self.items))
        if backend == "faiss":
            import faiss

            nb, d = self.vectors.shape
            if nb <= 200_000:
                self.index = faiss.IndexFlatIP(d)
                self.index.add(self.vectors)
            else:
                # Largest inner product as nearest neighbour (Bachrach et al., 2014): items get one more
                # coordinate, sqrt(max_norm^2 - |x|^2), so that all have the same norm, and queries a 0
                # there; then |q - x|^2 = |q|^2 + max_norm^2 - 2 q.x, smallest where q.x is largest. An
                # inverted-file index clusters by distance, so it needs this where norms differ.
                norms = np.einsum("nd,nd->n", self.vectors, self.vectors)
                items = np.column_stack([self.vectors, np.sqrt(norms.max() - norms)]).astype(np.float32)
                nlist = int(4 * math.sqrt(nb))
                self.index = faiss.IndexIVFFlat(faiss.IndexFlatL2(d + 1), d + 1, nlist, faiss.METRIC_L2)
                self.index.cp.seed = seed
                self.index.train(items[np.random.default_rng(seed).choice(nb, min(nb, 40 * nlist), replace=False)])
                self.index.nprobe = 256
                self.index.add(items)

    def search(self, queries: np.ndarray, seen: list[set], k: int = 1, fill: bool = True) -> np.ndarray:
        """`[N, k]` items, best first, for `queries` `[N, dim]`; row `n` never holds an item of `seen[n]`.

        When fewer than `k` of the searchable `items` are unseen, the rest of the row comes from the
        whole catalogue (best first); with `fill=False` it is left at -1 instead, unless the row
        would hold no item at all.

        Args:
            queries: `[N, dim]` query vectors.
            seen: for each query, the catalogue items never to return.
            k: items per query. Defaults to `1`.
            fill: whether to fill from the whole catalogue. Defaults to `True`.

        Returns:
            `[N, k]` catalogue items (int64).
        """
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if self.index is None:
            return self._complete(queries, seen, self._numpy_search(queries, seen, k), fill)
        extra = max((len(s) for s in seen), default=0)
        kk = min(self.vectors.shape[0], k + extra)
        searched = queries
        if self.index.d > queries.shape[1]:  # the inverted-file index's extra coordinate (see __init__)
            searched = np.column_stack([queries, np.zeros(len(queries), dtype=np.float32)])
        _, found = self.index.search(searched, kk)
        if self.items is not None:
            found = np.where(found >= 0, self.items[np.maximum(found, 0)], -1)
        out = np.empty((len(queries), k), dtype=np.int64)
        missing = []
        for n, (row, excluded) in enumerate(zip(found, seen)):
            keep = [i for i in row if i >= 0 and i not in excluded][:k]
            if len(keep) < k:  # an approximate index found too few: search this row exactly
                missing.append(n)
            else:
                out[n] = keep
        if missing:
            out[missing] = self._numpy_search(queries[missing], [seen[n] for n in missing], k)
        return self._complete(queries, seen, out, fill)

    def _complete(self, queries: np.ndarray, seen: list[set], out: np.ndarray, fill: bool) -> np.ndarray:
        """Fills the -1 slots of `out` (searchable items exhausted) from the whole catalogue."""
        short = np.flatnonzero((out < 0).any(axis=1) if fill else (out < 0).all(axis=1))
        if short.size:
            excluded = [seen[n] | set(out[n][out[n] >= 0].tolist()) for n in short]
            more = self._numpy_search(queries[short], excluded, out.shape[1], everything=True)
            for row, extra in zip(short, more):
                holes = np.flatnonzero(out[row] < 0)
                out[row, holes] = extra[: holes.size]
        return out

    def _numpy_search(
        self, queries: np.ndarray, seen: list[set], k: int, block: int = 65_536, everything: bool = False
    ) -> np.ndarray:
        """Exact search over the searchable items (all items with `everything`); -1 where too few are unseen."""
        vectors, position = (self.embeddings, None) if everything else (self.vectors, self._position)
        n = len(queries)
        best_scores = np.full((n, k), -np.inf, dtype=np.float32)
        best_items = np.zeros((n, k), dtype=np.int64)
        rows = np.repeat(np.arange(n), [len(s) for s in seen])
        cols = np.fromiter((i for s in seen for i in s), dtype=np.int64, count=rows.size)
        if position is not None:  # seen catalogue items -> rows of vectors
            cols = position[cols]
            rows, cols = rows[cols >= 0], cols[cols >= 0]
        for lo in range(0, vectors.shape[0], block):
            scores = queries @ vectors[lo : lo + block].T  # [N, B]
            inside = (cols >= lo) & (cols < lo + scores.shape[1])
            scores[rows[inside], cols[inside] - lo] = -np.inf
            kb = min(k, scores.shape[1])
            top = (
                np.argpartition(-scores, kb - 1, axis=1)[:, :kb]
                if kb < scores.shape[1]
                else np.tile(np.arange(scores.shape[1]), (n, 1))
            )
            all_scores = np.concatenate([best_scores, np.take_along_axis(scores, top, 1)], axis=1)
            all_items = np.concatenate([best_items, top + lo], axis=1)
            keep = np.argsort(-all_scores, axis=1, kind="stable")[:, :k]
            best_scores = np.take_along_axis(all_scores, keep, 1)
            best_items = np.take_along_axis(all_items, keep, 1)
        if position is not None:
            best_items = self.items[best_items]
        return np.where(np.isfinite(best_scores), best_items, -1)


def make_index(embeddings: np.ndarray, backend: str, seed: int, items: Any = None) -> ItemIndex:
    """The index `--index` asks for over `items` (default: all); `auto` is faiss from 200 000 searched
    items when installed, numpy otherwise."""
    searched = len(embeddings) if items is None else len(items)
    if backend in ("auto", "faiss"):
        try:
            import faiss  # noqa: F401
        except ImportError:
            if backend == "faiss" or searched >= 200_000:
                print("faiss is not installed (pip install -e '.[recsys]'): searching with numpy instead")
            backend = "numpy"
        else:
            backend = "faiss" if backend == "faiss" or searched >= 200_000 else "numpy"
    return ItemIndex(embeddings, backend, seed, items)


# ----------------------------------------------------------------------------- the agent
def make_agent(
    algo: str, obs_dim: int, action_bound: np.ndarray, seed: int, memory: Any, gamma: float = GAMMA, hidden=(256, 256)
) -> Any:
    """An actor into item-embedding space (tanh scaled to the embeddings' range) and a critic Q(s, a)."""
    keras.utils.set_random_seed(seed)
    nb_actions = len(action_bound)
    obs_in = keras.Input(shape=(obs_dim,), name="state")
    x = obs_in
    for units in hidden:
        x = layers.Dense(units, activation="relu")(x)
    x = layers.Dense(nb_actions, activation="tanh")(x)
    actor = keras.Model(obs_in, layers.Rescaling(scale=action_bound.tolist())(x), name="actor")
    action_in = keras.Input(shape=(nb_actions,), name="action")
    critic_obs_in = keras.Input(shape=(obs_dim,), name="critic_state")
    y = layers.Concatenate()([action_in, critic_obs_in])
    for units in hidden:
        y = layers.Dense(units, activation="relu")(y)
    critic = keras.Model([action_in, critic_obs_in], layers.Dense(1)(y), name="critic")
    common = dict(
        nb_actions=nb_actions,
        actor=actor,
        critic=critic,
        critic_action_input=action_in,
        memory=memory,
        gamma=gamma,
        batch_size=256,
        nb_steps_warmup_critic=0,
        nb_steps_warmup_actor=0,
        target_model_update=0.005,
    )
    if algo == "td3bc":
        agent = rl.agents.TD3BCAgent(**common)
    elif algo == "td3":
        agent = rl.agents.TD3Agent(**common)
    else:
        agent = rl.agents.DDPGAgent(**common)
    agent.compile(keras.optimizers.Adam(learning_rate=3e-4))
    return agent


def make_memory(steps: LoggedSteps, seed: int) -> SequentialMemory:
    """The logged transitions in a replay memory; a session's last rating is terminal (the user left)."""
    return SequentialMemory.from_arrays(steps.observations, steps.actions, steps.rewards, steps.terminals, seed=seed)


# ----------------------------------------------------------------------------- evaluation
class Policy(NamedTuple):
    """A recommender: `rank(states [n, d], seen: n sets) -> [n, k]` items, best first, none already seen."""

    name: str
    rank: Any  # (states, seen, k) -> items [n, k]


def actor_actions(agent: Any, states: np.ndarray) -> np.ndarray:
    """The actor's vectors `[n, embedding size]` for `states` `[n, state size]`, in one batch."""
    if getattr(agent, "normalize_observations", False) and agent.observation_mean is not None:
        states = (states - agent.observation_mean) / agent.observation_std  # as TD3BCAgent's act_graph does
    return agent.actor(states, training=False).numpy()


def critic_values(agent: Any, states: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """The critic's values for `k` actions per state, in one batch.

    Args:
        agent: a trained `DDPGAgent`, `TD3Agent` or `TD3BCAgent` (its first critic is used).
        states: `[n, state size]` unnormalised states.
        actions: `[n, k, action size]` item vectors.

    Returns:
        `[n, k]` values `Q(states[i], actions[i, j])`.
    """
    n, k, d = actions.shape
    if getattr(agent, "normalize_observations", False) and agent.observation_mean is not None:
        states = (states - agent.observation_mean) / agent.observation_std  # as TD3BCAgent's critic saw them
    repeated = np.repeat(np.asarray(states, dtype=np.float32), k, axis=0)
    return agent.critic([actions.reshape(n * k, d), repeated], training=False).numpy().reshape(n, k)


def learned_policy(name: str, agent: Any, index: ItemIndex, candidates: int = 1) -> Policy:
    """The actor's vector for each state, then the unseen items with the highest inner product with it.

    With `candidates > 1`, the `candidates` unseen items nearest the actor's vector are ranked by the
    critic's `Q(s, item vector)` instead (the "Wolpertinger" policy of Dulac-Arnold et al., 2015): the
    actor proposes a neighbourhood, the critic chooses in it.

    Args:
        name: the policy's name in the result tables.
        agent: the trained agent (its actor, and its critic when `candidates > 1`).
        index: the item search.
        candidates: how many nearest items the critic chooses among. Defaults to `1` (no critic).

    Returns:
        A `Policy`.
    """

    def rank(states: np.ndarray, seen: list[set], k: int) -> np.ndarray:
        proto = actor_actions(agent, states)
        if candidates <= k:
            return index.search(proto, seen, k)
        near = index.search(proto, seen, candidates, fill=False)  # -1: fewer unseen searchable items
        q = np.where(near >= 0, critic_values(agent, states, index.embeddings[np.maximum(near, 0)]), -np.inf)
        return np.take_along_axis(near, np.argsort(-q, axis=1, kind="stable")[:, :k], axis=1)

    return Policy(name, rank)


def sampling_policy(name: str, draw: Any) -> Policy:
    """`k` distinct unseen items from `draw(n) -> n items` (repeats and seen items are drawn again)."""

    def rank(states: np.ndarray, seen: list[set], k: int) -> np.ndarray:
        out = np.empty((len(seen), k), dtype=np.int64)
        for row, excluded in enumerate(seen):
            chosen: list[int] = []
            while len(chosen) < k:
                chosen += [i for i in draw(2 * k).tolist() if i not in excluded and i not in chosen][: k - len(chosen)]
            out[row] = chosen
        return out

    return Policy(name, rank)


def popularity_policy(liked_counts: np.ndarray) -> Policy:
    """The most often liked items of the logs that the user has not seen."""
    ranking = np.argsort(-liked_counts, kind="stable")

    def rank(states: np.ndarray, seen: list[set], k: int) -> np.ndarray:
        out = np.empty((len(seen), k), dtype=np.int64)
        for row, excluded in enumerate(seen):
            chosen: list[int] = []
            for start in range(0, len(ranking), 4 * k + len(excluded)):
                chosen += [i for i in ranking[start : start + 4 * k + len(excluded)].tolist() if i not in excluded]
                if len(chosen) >= k:
                    break
            out[row] = chosen[:k]
        return out

    return Policy("popularity", rank)


def evaluate_on_simulator(
    sim: Simulator,
    policies: list[Policy],
    embeddings: np.ndarray,
    history: Ratings,
    users: np.ndarray,
    positive: float,
    seed: int,
) -> list[tuple[str, float, float, float]]:
    """One new session per user in `users` (simulator indices) under each policy, same users, same noise.

    Each user starts from their logged history: its liked items make the first state, its rated items
    are never recommended again. Returns `(name, reward per session, hit rate, session length)` rows.
    """
    rows_of_user = np.full(sim.nb_users, -1)
    rows_of_user[users] = np.arange(len(users))
    file_users = history.user_ids[history.user] - 1  # simulator index of each logged rating's user
    sim_items = history.item_ids[history.item] - 1
    keep = rows_of_user[file_users] >= 0
    order = np.lexsort((history.timestamp[keep], rows_of_user[file_users[keep]]))
    h_rows, h_items = rows_of_user[file_users[keep]][order], sim_items[keep][order]
    h_liked = history.rating[keep][order] >= positive
    results = []
    for policy in policies:
        tracker = StateTracker(embeddings, len(users))
        tracker.observe(h_rows, h_items, h_liked)  # the first state: liked items of the logged history
        seen = [set() for _ in users]
        for r, i in zip(h_rows.tolist(), h_items.tolist()):
            seen[r].add(i)

        def choose(active, policy=policy, tracker=tracker, seen=seen):
            return policy.rank(tracker.states(active), [seen[r] for r in active], 1)[:, 0]

        result = run_sessions(sim, users, choose, seen, seed=seed, on_rating=tracker.observe_in_session)
        results.append(
            (
                policy.name,
                float(result.session_rewards.mean()),
                float(result.session_rewards.sum() / result.session_lengths.sum()),
                float(result.session_lengths.mean()),
            )
        )
    return results


def held_out_sessions(ratings: Ratings, steps: LoggedSteps) -> np.ndarray:
    """Rows of `steps` in the last session of each user who has more than one session (a boolean mask)."""
    user = ratings.user[steps.order]
    start = np.r_[True, steps.terminals[:-1]]
    session = np.cumsum(start) - 1
    session_user = user[start]
    last = np.r_[session_user[1:] != session_user[:-1], True]  # each user's last session
    first = np.r_[True, session_user[1:] != session_user[:-1]]
    return (last & ~first)[session]


def evaluate_held_out(
    policies: list[Policy], ratings: Ratings, steps: LoggedSteps, held: np.ndarray, positive: float, k: int = 10
) -> list[tuple[str, float, float]]:
    """Replays held-out sessions: for each liked held-out rating, is the item among the policy's top `k`?

    The state is the user's state before that rating; the items rated before it are excluded.
    Returns `(name, hit rate at k, number of liked held-out ratings)` rows.
    """
    user, item = ratings.user[steps.order], ratings.item[steps.order]
    targets = np.flatnonzero(held & (ratings.rating[steps.order] >= positive))
    seen_before: list[set] = []
    history: dict[int, set] = {}
    wanted = set(targets.tolist())
    for row, (u, i) in enumerate(zip(user.tolist(), item.tolist())):
        if row in wanted:
            seen_before.append(set(history.get(u, ())))
        history.setdefault(u, set()).add(i)
    results = []
    for policy in policies:
        hits = 0
        for lo in range(0, len(targets), 1024):
            rows = targets[lo : lo + 1024]
            top = policy.rank(steps.observations[rows], seen_before[lo : lo + 1024], k)
            hits += int((top == item[rows, None]).any(axis=1).sum())
        results.append((policy.name, hits / max(1, len(targets)), float(len(targets))))
    return results


def format_table(rows: list[tuple], header: tuple[str, ...]) -> str:
    """A plain-text table: the first column left-aligned, numbers right-aligned with 3 decimals."""
    widths = [max(len(header[0]), *(len(r[0]) for r in rows))] + [max(len(h), 8) for h in header[1:]]
    lines = ["  ".join(h.ljust(w) if c == 0 else h.rjust(w) for c, (h, w) in enumerate(zip(header, widths)))]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [f"{v:.3f}".rjust(w) for v, w in zip(row[1:], widths[1:])]
        lines.append("  ".join(cells))
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=5000, help="gradient updates (default: 5000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument(
        "--items", type=int, default=10_000, help="simulated catalogue size, <= 1000000 (default: 10000)"
    )
    parser.add_argument("--users", type=int, default=5000, help="simulated users (default: 5000)")
    parser.add_argument("--sessions", type=int, default=4, help="logged sessions per simulated user (default: 4)")
    parser.add_argument("--ratings", metavar="PATH", help="logged ratings, CSV: user_id,item_id,rating,timestamp")
    parser.add_argument(
        "--encoding",
        default="utf-8",
        help="text encoding of the --ratings file (and of --write-ratings), e.g. latin-1 (default: utf-8)",
    )
    parser.add_argument(
        "--write-ratings", metavar="PATH", default="simulated_ratings.csv", help="where the simulated logs go"
    )
    parser.add_argument("--algo", choices=("td3bc", "ddpg", "td3"), default="td3bc", help="default: td3bc")
    parser.add_argument("--gamma", type=float, default=GAMMA, help=f"discount factor (default: {GAMMA})")
    parser.add_argument("--index", choices=("auto", "numpy", "faiss"), default="auto", help="item search backend")
    parser.add_argument("--positive", type=float, default=4.0, help="ratings at least this are likes (default: 4)")
    parser.add_argument("--session-gap", type=float, default=3600.0, help="seconds between sessions (default: 3600)")
    parser.add_argument("--session-length", type=int, default=20, help="most ratings per session (default: 20)")
    parser.add_argument(
        "--embedding-dim", type=int, default=16, help="ALS factors per item; 0: bias only (default: 16)"
    )
    parser.add_argument("--no-count", action="store_true", help="leave the log rating count out of the item vectors")
    parser.add_argument(
        "--candidates",
        type=int,
        default=1,
        help="items nearest the actor's vector that the critic chooses among; 1: the nearest (default: 1)",
    )
    parser.add_argument(
        "--min-ratings", type=int, default=0, help="recommend only items with this many logged ratings (default: 0)"
    )
    parser.add_argument("--eval-users", type=int, default=1000, help="simulated users evaluated (default: 1000)")
    parser.add_argument("--latency", action="store_true", help="time single recommendations after training")
    parser.add_argument("--verbose", type=int, default=1, help="0 silent training, 1 progress bar (default: 1)")
    args = parser.parse_args(argv)
    for name in ("steps", "items", "users", "sessions", "session_length", "candidates", "eval_users"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1. Received: {getattr(args, name)}")
    if args.items > 1_000_000:
        parser.error(f"--items is at most 1000000. Received: {args.items}")
    if args.embedding_dim < 0:
        parser.error(f"--embedding-dim must be at least 0. Received: {args.embedding_dim}")
    if args.min_ratings < 0:
        parser.error(f"--min-ratings must be at least 0. Received: {args.min_ratings}")
    if not 0.0 <= args.gamma <= 1.0:
        parser.error(f"--gamma must be in [0, 1]. Received: {args.gamma}")
    if not _is_text_encoding(args.encoding):
        parser.error(f"--encoding must be a text encoding Python knows. Received: {args.encoding!r}")
    args.parser = parser
    return args


ALGORITHMS = {"td3bc": "TD3+BC", "ddpg": "DDPG", "td3": "TD3"}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Runs the example; returns the result rows by policy name, and the training figures."""
    args = parse_args(argv)
    t0 = time.perf_counter()
    sim = None
    if args.ratings is None:
        sim = Simulator(args.items, args.users, seed=args.seed, session_length=args.session_length)
        logs = simulate_logs(sim, args.sessions, seed=args.seed)
        write_ratings_csv(args.write_ratings, *logs, encoding=args.encoding)
        path = args.write_ratings
        print(
            f"No --ratings given: wrote {len(logs[0])} simulated ratings of {args.users} users and {args.items} items "
            f"(logging policy) to {path}"
        )
        catalogue = np.arange(1, args.items + 1)
    else:
        path, catalogue = args.ratings, None
    try:
        ratings = read_ratings_csv(path, catalogue, encoding=args.encoding)
    except (OSError, ValueError) as e:
        args.parser.error(str(e))
    positives = int((ratings.rating >= args.positive).sum())
    if positives == 0:
        args.parser.error(f"{path}: no rating is at least --positive={args.positive:g}: no like to learn from")
    nb_items = len(ratings.item_ids)
    print(f"Read {len(ratings.user)} ratings ({positives} likes) of {len(ratings.user_ids)} users, {nb_items} items")

    t1 = time.perf_counter()
    steps = logged_states(ratings, np.zeros((nb_items, 1)), args.positive, args.session_gap, args.session_length)
    held = held_out_sessions(ratings, steps) if sim is None else np.zeros(len(steps.order), dtype=bool)
    train_rows = steps.order[~held]
    train = Ratings(*(a[train_rows] for a in ratings[:4]), ratings.user_ids, ratings.item_ids)
    embeddings = item_vectors(train, nb_items, dim=args.embedding_dim, seed=args.seed, count=not args.no_count)
    steps = logged_states(ratings, embeddings, args.positive, args.session_gap, args.session_length)
    if (~held).sum() < 256:
        args.parser.error(f"{path}: {int((~held).sum())} training ratings are fewer than one batch (256)")
    print(
        f"Item vectors ({embeddings.shape[1]} number{'s' * (embeddings.shape[1] > 1)} each: ALS"
        f"{'' if args.no_count else ', log count'}) and "
        f"{int((~held).sum())} transitions in "
        f"{int(steps.terminals[~held].sum())} sessions: {time.perf_counter() - t1:.1f} s"
        + (f"; {int(steps.terminals[held].sum())} sessions held out" if held.any() else "")
    )

    train_steps = LoggedSteps(*(a[~held] for a in steps))
    memory = make_memory(train_steps, args.seed)
    bound = (np.abs(embeddings).max(axis=0) + 1e-3).astype(np.float32)
    agent = make_agent(args.algo, state_dim(embeddings), bound, args.seed, memory, gamma=args.gamma)
    t2 = time.perf_counter()
    agent.fit_offline(
        args.steps, verbose=args.verbose, log_interval=max(1, args.steps // 5), action_space=Box(-bound, bound)
    )
    train_s = time.perf_counter() - t2
    print(f"Trained {args.steps} updates offline in {train_s:.1f} s ({args.steps / train_s:.0f} updates/s)")

    # Items with fewer than --min-ratings logged ratings are not searched: their embeddings are mostly noise,
    # and among a million noisy vectors some always line up with any query.
    rated = np.flatnonzero(np.bincount(train.item, minlength=nb_items) >= args.min_ratings)
    if rated.size == 0:
        args.parser.error(f"no item has at least --min-ratings={args.min_ratings} logged ratings")
    index = make_index(embeddings, args.index, args.seed, rated if args.min_ratings > 0 else None)
    rng = np.random.default_rng([args.seed, 2])
    liked_counts = np.bincount(train.item[train.rating >= args.positive], minlength=nb_items)
    policies = [
        learned_policy(f"learned ({ALGORITHMS[args.algo]})", agent, index, args.candidates),
        sampling_policy("random", lambda n: rng.integers(0, nb_items, n)),
        popularity_policy(liked_counts),
    ]
    out: dict[str, Any] = {"updates_per_s": args.steps / train_s, "train_s": train_s, "agent": agent}
    t3 = time.perf_counter()
    if sim is not None:
        policies.insert(1, sampling_policy("logging", lambda n: sim.logging_items(n, rng)))
        users = np.random.default_rng([args.seed, 3]).choice(sim.nb_users, min(args.eval_users, sim.nb_users), False)
        rows = evaluate_on_simulator(sim, policies, embeddings, ratings, np.sort(users), args.positive, args.seed + 1)
        print(
            f"\nOne new session of each of {len(users)} simulated users per policy "
            f"(at most {sim.session_length} recommendations; a user leaves after {sim.patience} ratings below "
            f"{args.positive:g}), {time.perf_counter() - t3:.1f} s:"
        )
        print(format_table(rows, ("policy", "reward/session", "hit rate", "session length")))
    elif held.any():
        rows = evaluate_held_out(policies, ratings, steps, held, args.positive)
        print(
            f"\nHeld-out last sessions ({int(rows[0][2])} liked ratings): share of liked items among each policy's "
            f"top 10 at that point, {time.perf_counter() - t3:.1f} s:"
        )
        print(format_table([r[:2] for r in rows], ("policy", "hit rate@10")))
    else:
        rows = []
        print("\nNo user has two sessions: nothing to hold out, so no evaluation.")
    out["table"] = {r[0]: r[1:] for r in rows}
    if args.latency:
        queries = actor_actions(agent, steps.observations[:64])
        index.search(queries[:1], [set()], args.candidates, fill=False)  # warm-up
        t = time.perf_counter()
        for q in queries:
            index.search(q[None], [set()], args.candidates, fill=False)
        out["latency_ms"] = 1000 * (time.perf_counter() - t) / len(queries)
        policies[0].rank(steps.observations[:1], [set()], 1)  # warm-up
        t = time.perf_counter()
        for state in steps.observations[:64]:
            policies[0].rank(state[None], [set()], 1)
        out["recommend_ms"] = 1000 * (time.perf_counter() - t) / 64
        print(
            f"Per-recommendation latency ({index.backend}, {nb_items} items): search of the {args.candidates} "
            f"nearest item(s) {out['latency_ms']:.2f} ms; state to item (actor, search"
            + (", critic" if args.candidates > 1 else "")
            + f") {out['recommend_ms']:.2f} ms"
        )
    print(f"Total: {time.perf_counter() - t0:.1f} s")
    return out


if __name__ == "__main__":
    main()
