"""interp.nodes: the one place heads and nodes are written and read."""

from __future__ import annotations

import pandas as pd
import pytest

from interp.errors import InterpError
from interp.nodes import (
    Node,
    as_head,
    check_heads,
    head_label,
    head_labels,
    head_node,
    heads_of,
    layer_label,
    parse_heads,
)


def test_labels_read_back_as_the_same_node():
    for l, h in [(0, 0), (3, 5), (29, 8)]:
        assert Node.parse(head_label(l, h)) == head_node(l, h) == as_head(head_label(l, h))
        assert head_node(l, h).label == head_label(l, h) == f"L{l}H{h}"
    assert layer_label(7) == "L7" and Node("resid_pre", 7).label == "L7"
    assert head_labels(2, 3) == ["L0H0", "L0H1", "L0H2", "L1H0", "L1H1", "L1H2"]


@pytest.mark.parametrize(
    "spec", ["L2H5", "l2h5", " L2H5 ", "2.5", "z:L2H5", (2, 5), head_node(2, 5)]
)
def test_every_way_of_writing_a_head(spec):
    assert as_head(spec) == Node("z", 2, 5)


@pytest.mark.parametrize(
    "spec",
    ["L2", "resid_pre:L2", "q:L2H5", "L2H5@3", "2", (2,), (2, 5, 1), (2.0, 5), (True, 1), "x"],
)
def test_what_is_not_a_head_is_refused_with_the_forms_that_work(spec):
    with pytest.raises(InterpError, match=r"'L2H5', '2.5' or \(2, 5\)"):
        as_head(spec)


def test_parse_heads_reads_lists_and_comma_strings():
    want = [head_node(0, 1), head_node(2, 3)]
    assert parse_heads("L0H1,L2H3") == parse_heads("0.1, 2.3") == parse_heads([(0, 1), "L2H3"])
    assert parse_heads("L0H1,L2H3") == want
    with pytest.raises(InterpError, match="No heads"):
        parse_heads([])


def test_nodes_print_and_parse_round_trip():
    for text in ["z:L3H2", "q:L3H2", "resid_pre:L2@5", "mlp_out:L1", "pattern:L1H0@7>3"]:
        assert str(Node.parse(text)) == text
    assert Node.parse("head_out:L1H2") == head_node(1, 2)  # TransformerLens' alias of z


def test_heads_of_a_ranking_table_and_range_checks():
    table = pd.DataFrame({"layer": [3, 0], "head": [1, 2], "value": [0.5, -0.2]})
    assert heads_of(table) == [head_node(3, 1), head_node(0, 2)]
    with pytest.raises(InterpError, match="layer and head columns"):
        heads_of(pd.DataFrame({"layer": [1]}))
    check_heads(heads_of(table), n_layers=4, n_heads=4, model_name="m")
    with pytest.raises(InterpError, match="L3H1 is not a head of m"):
        check_heads(heads_of(table), n_layers=3, n_heads=4, model_name="m")


def test_integer_like_indices_are_heads_too():
    import numpy as np
    import torch

    assert as_head((np.int64(2), np.int32(5))) == head_node(2, 5)
    assert as_head(tuple(torch.tensor([2, 5]))) == head_node(2, 5)
    for bad in [(2.0, 5), (True, 5), (torch.tensor(2.0), 5)]:
        with pytest.raises(InterpError):
            as_head(bad)
