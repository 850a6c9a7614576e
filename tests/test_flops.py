import pytest

from gtsp.accounting.flops import analytic_flops_per_graph, flop_counter_per_graph
from gtsp.accounting.params import count_params
from gtsp.models import build_model
from tests.conftest import random_graph


@pytest.mark.parametrize("heads,layers", [(4, 2), (2, 3)])
def test_gps_analytic_flops_match_flop_counter(tiny_info, heads, layers):
    graphs = [random_graph(n, seed=n) for n in (4, 11, 25)]
    model = build_model("gps", tiny_info, hidden=32, layers=layers, heads=heads)
    analytic = analytic_flops_per_graph(model, graphs)
    counted = flop_counter_per_graph(model, graphs)
    assert analytic["dense"] == pytest.approx(counted, rel=0.01)
    assert analytic["message_passing"] > 0


def test_flops_grow_quadratically_with_attention(tiny_info):
    model = build_model("gps", tiny_info, hidden=32, layers=1, heads=4)
    small, big = (analytic_flops_per_graph(model, [random_graph(n, seed=1)])["dense"] for n in (10, 20))
    no_attn = build_model("gps", tiny_info, hidden=32, layers=1, heads=0)
    small0, big0 = (analytic_flops_per_graph(no_attn, [random_graph(n, seed=1)])["dense"] for n in (10, 20))
    # attention adds linear terms (q/k/v/out, 2 * 4 * L * C^2) and 4 * L^2 * C; removing the
    # linear part (doubling L doubles it) leaves exactly the quadratic term
    assert (big - big0) - 2 * (small - small0) == pytest.approx(4 * 32 * (400 - 2 * 100), rel=1e-6)


def test_param_count_matches_torch(tiny_info):
    model = build_model("gps", tiny_info, hidden=32, layers=2, heads=4)
    assert count_params(model)["dense"] == sum(p.numel() for p in model.parameters())
