"""The offline recommendation example: simulated logs, a user's own CSV, bad files, states, item search."""

import sys
from types import SimpleNamespace

import numpy as np
import pytest
from ddpg_recommendation import (
    ItemIndex,
    Ratings,
    Simulator,
    StateTracker,
    item_vectors,
    learned_policy,
    logged_states,
    main,
    make_index,
    read_ratings_csv,
    simulate_logs,
    write_ratings_csv,
)

SMALL = ["--items", "2000", "--users", "1000", "--sessions", "3", "--eval-users", "400", "--verbose", "0"]


def test_simulated_logs_train_and_the_learned_policy_beats_random(tmp_path, capsys):
    path = tmp_path / "logs.csv"
    out = main(SMALL + ["--steps", "400", "--write-ratings", str(path)])
    printed = capsys.readouterr().out
    assert "No --ratings given: wrote" in printed and str(path) in printed
    assert path.read_text().startswith("user_id,item_id,rating,timestamp\n")
    for name in ("learned (TD3+BC)", "logging", "random", "popularity"):
        assert name in printed
    assert "reward/session" in printed and "hit rate" in printed
    table = out["table"]
    reward, hit_rate, length = table["learned (TD3+BC)"]
    # Seeded; measured 5.5 likes per session against 2.0 (random) and 2.3 (logging) after 400 updates.
    assert reward > 1.5 * table["random"][0] and reward > 1.3 * table["logging"][0], table
    assert 0.0 <= hit_rate <= 1.0 and 1.0 <= length <= 20.0


def test_users_own_csv_is_read_and_held_out_sessions_are_evaluated(tmp_path, capsys):
    sim = Simulator(nb_items=500, nb_users=300, seed=3)
    users, items, ratings, stamps = simulate_logs(sim, sessions_per_user=3, seed=3)
    path = tmp_path / "ratings.csv"
    # MovieLens' own header names, ids that are not 1..n, half-star ratings.
    rows = [f"{10 * u},{1000 + i},{r - 0.5 * (r > 4)},{s}" for u, i, r, s in zip(users, items, ratings, stamps)]
    path.write_text("userId,movieId,rating,timestamp\n" + "\n".join(rows) + "\n")
    out = main(["--ratings", str(path), "--steps", "200", "--verbose", "0", "--positive", "3.5"])
    printed = capsys.readouterr().out
    assert f"Read {len(users)} ratings" in printed
    assert "sessions held out" in printed and "hit rate@10" in printed
    assert set(out["table"]) == {"learned (TD3+BC)", "random", "popularity"}
    assert all(0.0 <= row[0] <= 1.0 for row in out["table"].values())


def test_reading_keeps_the_files_ids_and_accepts_tabs_without_header(tmp_path):
    path = tmp_path / "u.data"  # MovieLens 100k's layout
    path.write_text("7\t30\t5\t100\n7\t10\t2\t50\n9\t30\t4\t70\n")
    data = read_ratings_csv(str(path))
    assert data.user_ids.tolist() == [7, 9] and data.item_ids.tolist() == [10, 30]
    assert data.user.tolist() == [0, 0, 1] and data.item.tolist() == [1, 0, 1]
    assert data.rating.tolist() == [5, 2, 4] and data.timestamp.tolist() == [100, 50, 70]


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "the file is empty"),
        ("user_id,item_id,rating,timestamp\n", "no rating rows"),
        ("user_id,item_id,rating,timestamp\n1,2,5,10\n1,3,4\n", "line 3: expected 4 fields"),
        ("1,2,5,10\n1,3,good,11\n", "line 2: rating is not a number. Received: rating='good'"),
        ("1,2,5,10\n1,2.5,4,11\n", "line 2: item_id must be an integer. Received: item_id=2.5"),
        ("1,2,nan,10\n", "line 1: rating must be a finite number"),
        ("1,2,5,10,3\n1,3,4,11,3\n", "rows have 5 fields; expected 4"),
    ],
)
def test_bad_csv_names_the_file_and_the_problem(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match="bad.csv") as info:
        read_ratings_csv(str(path))
    assert message in str(info.value)


def test_bad_csv_on_the_command_line_is_a_usage_error(tmp_path, capsys):
    path = tmp_path / "likes.csv"
    path.write_text("1,2,3,10\n1,3,2,11\n")
    with pytest.raises(SystemExit) as info:
        main(["--ratings", str(path)])
    assert info.value.code == 2
    assert "likes.csv: no rating is at least --positive=4: no like to learn from" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--ratings", str(tmp_path / "missing.csv")])
    assert "missing.csv" in capsys.readouterr().err


def test_logged_states_are_the_states_served_one_rating_at_a_time():
    """Training sees the state the recommender computes while serving (same definition, same values)."""
    sim = Simulator(nb_items=300, nb_users=40, seed=1)
    users, items, ratings, stamps = simulate_logs(sim, sessions_per_user=3, seed=1)
    data = Ratings(users - 1, items - 1, ratings.astype(np.float32), stamps, np.arange(1, 41), np.arange(1, 301))
    embeddings = np.random.default_rng(0).standard_normal((300, 5)).astype(np.float32)
    steps = logged_states(data, embeddings, positive=4.0, session_gap=3600, session_length=20)
    tracker = StateTracker(embeddings, 40)
    starts = np.r_[True, steps.terminals[:-1]]
    for k, row in enumerate(steps.order):
        u = np.array([data.user[row]])
        if starts[k]:
            tracker.dislikes[u] = 0
        np.testing.assert_allclose(tracker.states(u)[0], steps.observations[k], atol=1e-5)
        tracker.observe_in_session(u, np.array([data.item[row]]), np.array([data.rating[row] >= 4.0]))
    assert steps.terminals.sum() == 40 * 3  # sessions are days apart: one episode each
    np.testing.assert_array_equal(steps.actions, embeddings[data.item[steps.order]])


def test_numpy_search_is_exact_and_skips_seen_items():
    rng = np.random.default_rng(0)
    embeddings = rng.standard_normal((70_000, 6)).astype(np.float32)  # more than one block of items
    queries = rng.standard_normal((5, 6)).astype(np.float32)
    scores = queries @ embeddings.T
    seen = [set(np.argsort(-scores[n])[: 3 * n].tolist()) for n in range(5)]  # hide the best 0, 3, ... items
    found = ItemIndex(embeddings).search(queries, seen, k=4)
    for n in range(5):
        assert found[n].tolist() == np.argsort(-scores[n])[3 * n : 3 * n + 4].tolist()


@pytest.mark.parametrize("backend", ["numpy", "faiss"])
def test_search_restricted_to_some_items_returns_catalogue_items(backend):
    embeddings = np.arange(10, dtype=np.float32)[:, None] * np.ones((1, 2), np.float32)  # item i scores 2 i
    index = ItemIndex(embeddings, backend, items=np.array([1, 3, 5, 7]))
    found = index.search(np.ones((2, 2), np.float32), [set(), {7, 9}], k=2)
    assert found.tolist() == [[7, 5], [5, 3]]
    # Searchable items exhausted: the rest of the row comes from the whole catalogue, still skipping seen items.
    assert index.search(np.ones((1, 2), np.float32), [{1, 5, 9}], k=4).tolist() == [[7, 3, 8, 6]]
    assert index.search(np.ones((1, 2), np.float32), [{1, 5, 9}], k=4, fill=False).tolist() == [[7, 3, -1, -1]]
    assert index.search(np.ones((1, 2), np.float32), [{1, 3, 5, 7}], k=2, fill=False).tolist() == [[9, 8]]


def test_faiss_search_agrees_with_numpy():
    import faiss  # noqa: F401  # the recsys extra (also in the test extra)

    rng = np.random.default_rng(1)
    embeddings = rng.standard_normal((5000, 8)).astype(np.float32)
    queries = rng.standard_normal((20, 8)).astype(np.float32)
    seen = [set(rng.integers(0, 5000, 30).tolist()) for _ in range(20)]
    exact = ItemIndex(embeddings).search(queries, seen, k=3)
    np.testing.assert_array_equal(ItemIndex(embeddings, "faiss").search(queries, seen, k=3), exact)


def test_missing_faiss_falls_back_to_numpy_with_a_message(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "faiss", None)  # as if faiss were not installed
    index = make_index(np.zeros((10, 3), dtype=np.float32), "faiss", seed=0)
    assert index.backend == "numpy"
    assert "pip install -e '.[recsys]'" in capsys.readouterr().out


def test_written_csv_reads_back(tmp_path):
    path = tmp_path / "r.csv"
    write_ratings_csv(str(path), np.array([2, 1]), np.array([5, 6]), np.array([4.5, 1.0]), np.array([20, 10]))
    data = read_ratings_csv(str(path), catalogue_ids=np.arange(1, 11))
    assert data.item_ids.tolist() == list(range(1, 11))
    assert data.user_ids[data.user].tolist() == [1, 2] and data.item.tolist() == [5, 4]  # sorted by user
    assert data.rating.tolist() == [1.0, 4.5]


def test_item_vectors_are_bias_and_log_count_without_factors():
    data = Ratings(
        np.array([0, 1, 1, 2]), np.array([0, 0, 1, 2]), np.array([5, 4, 1, 2], np.float32), np.arange(4.0),
        np.arange(3), np.arange(4),
    )  # fmt: skip
    vectors = item_vectors(data, nb_items=4, dim=0)
    # Biases (ridge, penalty 5) of the ratings minus their mean 3: item 0 (5, 4): 3/7; item 1 (1): -2/6; item 2: -1/6.
    np.testing.assert_allclose(vectors[:3, 0] / vectors[0, 0], [1.0, -7 / 9, -7 / 18], rtol=1e-4)
    np.testing.assert_allclose(vectors[:3, 1] / vectors[1, 1], np.log1p([2, 1, 1]) / np.log(2), rtol=1e-5)
    np.testing.assert_array_equal(vectors[3], 0.0)  # never rated
    assert item_vectors(data, nb_items=4, dim=3).shape == (4, 5)
    np.testing.assert_allclose(item_vectors(data, nb_items=4, dim=0, count=False), vectors[:, :1], rtol=1e-5)


class _Tensor:
    def __init__(self, value):
        self.value = np.asarray(value, dtype=np.float32)

    def numpy(self):
        return self.value


def test_with_candidates_the_critic_chooses_among_the_actors_nearest_items():
    # Inner product with the actor's vector [1, 0] ranks items 0, 1, 2, 3, 4; the critic prefers a large 2nd number.
    items = np.array([[5, 0], [4, 1], [3, 3], [2, 2], [1, 9]], dtype=np.float32)
    agent = SimpleNamespace(
        normalize_observations=False,
        actor=lambda s, training=False: _Tensor(np.tile([1.0, 0.0], (len(s), 1))),
        critic=lambda inputs, training=False: _Tensor(inputs[0][:, 1:2]),
    )
    states, index = np.zeros((2, 3), np.float32), ItemIndex(items)
    assert learned_policy("x", agent, index).rank(states, [set(), {0}], 1)[:, 0].tolist() == [0, 1]
    policy = learned_policy("x", agent, index, candidates=3)
    assert policy.rank(states, [set(), {2}], 1)[:, 0].tolist() == [2, 3]  # item 4 is not among the 3 nearest
    assert policy.rank(states, [set(), set()], 2).tolist() == [[2, 1], [2, 1]]


def test_ids_are_read_exactly_as_int64(tmp_path):
    """Ids beyond 2**53 are not rounded through a float: 2**53 and 2**53 + 1 are two users, two items."""
    big = 2**53
    path = tmp_path / "big.csv"
    path.write_text(f"user_id,item_id,rating,timestamp\n{big},{big + 1},5,10\n{big + 1},{big},4,11\n-{2**63},7,3,12\n")
    data = read_ratings_csv(str(path))
    assert data.user_ids.tolist() == [-(2**63), big, big + 1] and data.user.tolist() == [1, 2, 0]
    assert data.item_ids.tolist() == [7, big, big + 1] and data.item.tolist() == [2, 1, 0]
    written = tmp_path / "written.csv"
    write_ratings_csv(str(written), data.user_ids[data.user], data.item_ids[data.item], data.rating, data.timestamp)
    assert f"\n{big},{big + 1},5,10\n{big + 1},{big},4,11\n" in written.read_text()


@pytest.mark.parametrize("value", [str(2**63), str(-(2**63) - 1), "1" + "0" * 5000])
def test_ids_outside_int64_are_refused_with_the_file_and_line(tmp_path, value):
    path = tmp_path / "huge.csv"
    path.write_text(f"user_id,item_id,rating,timestamp\n1,2,5,10\n{value},3,4,11\n")
    with pytest.raises(ValueError) as info:
        read_ratings_csv(str(path))
    message = str(info.value)
    assert (
        message.startswith(f"{path}, line 3: user_id must be in int64's range")
        and f"Received: user_id={value[:30]}" in message
    )


@pytest.mark.parametrize(
    "text, line",
    [
        ("utilisateur,película,note,horodatage\n1,2,3,10\n1,3,2,11\n", 1),  # in the header
        ("user_id,item_id,rating,timestamp\n1,2,3,10\n# exporté le 3 mai\n1,3,2,11\n", 3),  # further on
    ],
)
def test_file_encoding_is_named_in_errors_and_chosen_with_encoding(tmp_path, capsys, text, line):
    path = tmp_path / "latin.csv"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(ValueError) as info:
        read_ratings_csv(str(path))
    assert str(info.value).startswith(f"{path}, line {line}: not utf-8 text") and "--encoding" in str(info.value)
    data = read_ratings_csv(str(path), encoding="latin-1")
    assert data.user_ids.tolist() == [1] and data.item_ids.tolist() == [2, 3]
    # On the command line: the decoding error names the file; with --encoding it is read (and found without likes).
    with pytest.raises(SystemExit):
        main(["--ratings", str(path)])
    assert f"{path}, line {line}: not utf-8 text" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--ratings", str(path), "--encoding", "latin-1"])
    assert "latin.csv: no rating is at least --positive=4" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--ratings", str(path), "--encoding", "no-such-codec"])
    assert "--encoding must be a text encoding Python knows. Received: 'no-such-codec'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="encoding must be a text encoding Python knows. Received: encoding='rot13'"):
        read_ratings_csv(str(path), encoding="rot13")  # a codec, but from text to text
