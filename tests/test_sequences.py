import torch

from gtsp.nn.sequences import Sequences


def test_round_trip_and_padding():
    batch = torch.tensor([0, 0, 1, 1, 1, 3])  # graph 2 is empty
    seq = Sequences.from_batch(batch, num_graphs=4)
    x = torch.arange(12.0).view(6, 2)
    dense = seq.to_dense(x)
    assert dense.shape == (4, 3, 2)
    assert seq.mask.tolist() == [[True, True, False], [True, True, True], [False] * 3, [True, False, False]]
    assert torch.equal(dense[~seq.mask], torch.zeros(6, 2))
    assert torch.equal(seq.to_flat(dense), x)
    assert not seq.is_full


def test_prefix_slots_hold_special_tokens():
    seq = Sequences.from_batch(torch.tensor([0, 1, 1]), num_graphs=2, prefix=1)
    cls = torch.full((1, 1, 1), -1.0)
    dense = seq.to_dense(torch.tensor([[1.0], [2.0], [3.0]]), prefix_tokens=cls)
    assert dense.squeeze(-1).tolist() == [[-1.0, 1.0, 0.0], [-1.0, 2.0, 3.0]]
    assert seq.lengths.tolist() == [2, 3]
    assert torch.equal(seq.to_flat(dense), torch.tensor([[1.0], [2.0], [3.0]]))
