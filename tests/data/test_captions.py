"""MIL-NCE candidates: the clip's own caption first, then its neighbours in time."""
import numpy as np

from vatt.data.captions import Caption, candidates, random_caption_time

TIMED = [Caption("a", 0, 2), Caption("b", 2, 4), Caption("c", 4, 6), Caption("d", 6, 8), Caption("e", 8, 10),
         Caption("f", 10, 12), Caption("g", 12, 14)]


def texts(chosen):
    return [c.text for c in chosen]


def test_own_caption_is_the_most_overlapping_then_nearest_neighbours():
    assert texts(candidates(TIMED, (7.5, 9.8), 5)) == ["e", "d", "f", "c", "g"]  # ties: earlier first
    assert texts(candidates(TIMED, (6.5, 9.5), 2)) == ["d", "c"]  # equal overlap and distance: file order
    assert texts(candidates(TIMED, (0.0, 1.0), 3)) == ["a", "b", "c"]
    assert texts(candidates(TIMED, (20.0, 23.0), 2)) == ["g", "f"]  # no overlap: the nearest


def test_fewer_captions_than_candidates_and_untimed_captions():
    assert texts(candidates(TIMED[:2], (0, 2), 5)) == ["a", "b"]
    untimed = [Caption("first"), Caption("second")]
    assert texts(candidates(untimed, (0, 1), 5, bounds=(0, 3))) == ["first", "second"]
    assert candidates([], (0, 1), 5) == []


def test_training_centres_on_a_random_caption_inside_the_source():
    rng = np.random.default_rng(0)
    times = {random_caption_time(TIMED, 2.0, 8.0, rng) for _ in range(100)}
    assert times == {3.0, 5.0, 7.0}
    assert random_caption_time([Caption("x")], 0, 10, rng) is None
