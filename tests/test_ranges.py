"""vatt.ranges.require: the one value check of components' constructor arguments."""
import math

import pytest

from vatt.ranges import require


@pytest.mark.parametrize("kwargs", [
    dict(low=1, batch_size=0), dict(low=0, high=1, share=1.5), dict(above=0, eps=0.0), dict(low=0, below=1, beta=1.0),
    dict(low=1, whole=True, steps=2.5), dict(low=0, flag=True), dict(low=0, lr=math.inf), dict(low=0, lr="0.1"),
])
def test_a_value_outside_its_rule_is_named(kwargs):
    name = [key for key in kwargs if key not in ("low", "high", "above", "below", "whole")][0]
    with pytest.raises(ValueError, match=rf"^{name} must be"):
        require(**kwargs)


def test_values_inside_their_rule_and_optional_ones_left_out_pass():
    require(1, whole=True, batch_size=1, steps=None)
    require(0, high=1, share=1.0)
    require(above=0, below=1, beta=0.999, eps=1e-8)


def test_the_message_says_the_rule_and_cuts_the_value():
    with pytest.raises(ValueError) as caught:
        require(1, whole=True, top_k=[1] * 10_000)
    message = str(caught.value)
    assert message.startswith("top_k must be an int >= 1, got [1, 1,") and len(message) < 300
