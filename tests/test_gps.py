import torch
from torch_geometric.data import Batch

from gtsp.models import build_model
from tests.conftest import random_graph


def test_output_shape_and_batching_invariance(tiny_info, tiny_batch):
    model = build_model("gps", tiny_info, hidden=32, layers=2, heads=4).eval()
    out = model(tiny_batch)
    assert out.shape == (4, 2)
    alone = torch.cat([model(Batch.from_data_list([g])) for g in tiny_batch.to_data_list()])
    assert torch.allclose(out, alone, atol=1e-5)


def test_attention_sees_long_range(tiny_info):
    """A node's output changes when a node in another connected component changes (global attention)."""
    g = random_graph(6, seed=1, rwse=False)
    g.edge_index = torch.tensor([[0, 1, 3, 4], [1, 0, 4, 3]])
    g.edge_attr = torch.randn(4, 4)
    from gtsp.data.transforms import FEATURES
    g = FEATURES["rwse"]()(g)
    model = build_model("gps", tiny_info, hidden=16, layers=1, heads=2, pool="sum").eval()
    base = model(Batch.from_data_list([g]))
    g2 = g.clone()
    g2.x[5] += 1.0  # node 5 is isolated from nodes 0..4
    assert not torch.allclose(model(Batch.from_data_list([g2])), base)
    pure_mpnn = build_model("gps", tiny_info, hidden=16, layers=1, heads=0).eval()
    x = pure_mpnn.node_encoder(Batch.from_data_list([g]))
    assert x.shape == (6, 16)


def test_loss_falls_on_a_fixed_batch(tiny_info, tiny_batch):
    torch.manual_seed(0)
    model = build_model("gps", tiny_info, hidden=32, layers=2, heads=4, attn_dropout=0.0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss = torch.nn.functional.cross_entropy(model(tiny_batch), tiny_batch.y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
