"""The array form of SeedSequence equals numpy's, word for word; env_seeds equals env_seed."""

from __future__ import annotations

import numpy as np
import pytest

from es_compact.rollout import EVAL, TRAIN, env_seed, env_seeds
from es_compact.seed_hash import first_state_word, words


@pytest.mark.parametrize("seed", [0, 1, 7, 2**32 - 1, 2**32, 2**40 + 5, 2**64 + 3, 2**100])
@pytest.mark.parametrize("iteration", [0, 5, 2**32 - 1, 2**32 + 1])
def test_first_state_word_equals_seed_sequence(seed, iteration):
    index = np.arange(0, 200, dtype=np.uint32)
    got = first_state_word([*words(seed), *words(iteration), index, 0xE5E5])
    ref = [np.random.SeedSequence([seed, iteration, int(k), 0xE5E5]).generate_state(1)[0]
           for k in index]
    assert got.dtype == np.uint32 and np.array_equal(got, ref)


def test_entropy_longer_than_the_pool_and_scalars_alone():
    for entropy in ([3], [1, 2, 3, 4, 5, 6, 7], [2**31, 0, 2**32 - 1]):
        ref = np.random.SeedSequence(entropy).generate_state(1)[0]
        assert first_state_word(entropy) == ref


@pytest.mark.parametrize("kind", [TRAIN, EVAL])
def test_env_seeds_equal_env_seed(kind):
    for seed, it in [(0, 0), (3, 17), (2**40, 123456)]:
        assert env_seeds(seed, it, 300, kind) == [env_seed(seed, it, k, kind)
                                                  for k in range(300)]
    assert env_seeds(1, 2, 0, kind) == []
    assert all(type(s) is int for s in env_seeds(1, 2, 3, kind))


def test_words_refuse_negative_numbers():
    assert words(0) == [0] and words(2**32 + 5) == [5, 1]
    with pytest.raises(ValueError):
        words(-1)
