import math

import pytest
import torch

from gtsp.errors import GtspError
from gtsp.nn.attention import MultiHeadSelfAttention
from gtsp.nn.ffn import FeedForward
from gtsp.sparsify.head import HeadGate
from gtsp.sparsify.neuron import NeuronGate
from gtsp.sparsify.token_selector import TokenSelector


def reference_attention(attn: MultiHeadSelfAttention, x, mask, bias=None):
    """Textbook multi-head attention, one graph at a time, no padding."""
    outs = []
    for b in range(x.size(0)):
        n = int(mask[b].sum())
        q, k, v = attn.qkv(x[b, :n]).view(n, 3, attn.num_heads, attn.head_dim).permute(1, 2, 0, 3)
        logits = q @ k.transpose(-1, -2) / math.sqrt(attn.head_dim)
        if bias is not None:
            logits = logits + bias[b, :, :n, :n]
        gate = attn.head_transform.gate if attn.head_transform is not None else torch.ones(attn.num_heads)
        heads = logits.softmax(-1) @ v * gate.view(-1, 1, 1)
        out = attn.out(heads.transpose(0, 1).reshape(n, -1))
        outs.append(torch.cat([out, torch.zeros(x.size(1) - n, x.size(2))]))
    return torch.stack(outs)


@pytest.fixture
def padded():
    torch.manual_seed(0)
    x = torch.randn(3, 6, 16)
    mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2, [1] * 2 + [0] * 4], dtype=torch.bool)
    return x, mask


def test_matches_textbook_attention_with_padding_and_bias(padded):
    x, mask = padded
    attn = MultiHeadSelfAttention(16, 4).eval()
    bias = torch.randn(3, 4, 6, 6)
    out = attn(x, mask, bias)
    ref = reference_attention(attn, x, mask, bias)
    assert torch.allclose(out[mask], ref[mask], atol=1e-5)


def test_padding_does_not_leak(padded):
    x, mask = padded
    attn = MultiHeadSelfAttention(16, 4).eval()
    before = attn(x, mask)
    x2 = x.clone()
    x2[~mask] = 100.0
    assert torch.allclose(attn(x2, mask)[mask], before[mask], atol=1e-5)


def test_heads_must_divide_width():
    with pytest.raises(GtspError, match="do not divide"):
        MultiHeadSelfAttention(16, 3)


def test_prune_heads_computes_what_the_gated_module_did(padded):
    x, mask = padded
    attn = MultiHeadSelfAttention(16, 4).eval()
    attn.head_transform = HeadGate(4)
    attn.head_transform.gate.copy_(torch.tensor([0.5, 0.0, 2.0, 0.0]))  # soft values are folded exactly too
    gated = attn(x, mask)
    attn.head_transform = None
    attn.prune_heads(torch.tensor([0, 2]), scale=torch.tensor([0.5, 2.0]))
    assert attn.num_heads == 2 and attn.qkv.out_features == 3 * 2 * 4 and attn.out.in_features == 8
    assert torch.allclose(attn(x, mask)[mask], gated[mask], atol=1e-5)


def test_head_scores_are_gate_gradients(padded):
    x, mask = padded
    attn = MultiHeadSelfAttention(16, 4)
    attn.dropout = 0.0
    gate = attn.head_transform = HeadGate(4)
    gate.gate.requires_grad_(True)
    attn(x, mask).square().sum().backward()
    # per graph the score is |dL/dgate| of that graph alone; summed over graphs it bounds |dL/dgate|
    assert torch.all(gate.scores > 0)
    assert torch.all(gate.scores >= gate.gate.grad.abs() - 1e-4)
    per_graph = torch.zeros(4)
    for b in range(x.size(0)):
        gate.gate.grad = None
        attn(x[b:b + 1], mask[b:b + 1]).square().sum().backward()
        per_graph += gate.gate.grad.abs()
    assert torch.allclose(gate.scores, 2 * per_graph, rtol=1e-4)  # recorded once per backward: 2 passes of each


def test_ffn_neuron_pruning_is_exact():
    torch.manual_seed(0)
    ffn = FeedForward(8, 16).eval()
    keep = torch.tensor([0, 3, 5, 9, 15])
    ffn.hidden_transform = NeuronGate(16)
    ffn.hidden_transform.gate.zero_()
    ffn.hidden_transform.gate[keep] = 1.0
    x = torch.randn(10, 8)
    before = ffn(x)
    ffn.hidden_transform = None
    ffn.prune_neurons(keep)
    assert ffn.fc1.out_features == 5
    assert torch.allclose(ffn(x), before, atol=1e-6)


def _ragged(graphs: int = 11, longest: int = 9, seed: int = 1):
    torch.manual_seed(seed)
    lengths = torch.randint(1, longest + 1, (graphs,))
    lengths[0] = longest
    mask = torch.arange(longest).unsqueeze(0) < lengths.unsqueeze(1)
    return torch.randn(graphs, longest, 16, requires_grad=True), mask


def test_size_groups_cover_every_graph_once_and_sort_by_length():
    from gtsp.nn.size_groups import size_groups

    _, mask = _ragged()
    groups = size_groups(mask, 4, 16, overhead=0)
    graphs = torch.cat([g for g, _ in groups])
    assert sorted(graphs.tolist()) == list(range(mask.size(0)))
    lengths = mask.sum(1)
    assert [length for _, length in groups] == [int(lengths[g].max()) for g, _ in groups]
    assert [length for _, length in groups] == sorted(length for _, length in groups)
    assert size_groups(mask, mask.size(0), 16) is None  # one group: a single padded call


def test_size_groups_merge_similar_lengths_and_split_mixed_ones():
    from gtsp.nn.size_groups import size_groups

    similar = torch.arange(30).unsqueeze(0) < (28 + torch.arange(64) % 3).unsqueeze(1)  # lengths 28-30
    assert len(size_groups(similar, 16, 64, overhead=0)) == 3  # no overhead: cut wherever the length grows
    assert size_groups(similar, 16, 64) is None  # a few padded slots cost less than three more calls
    lengths = torch.cat([torch.full((32,), 5), torch.full((32,), 60)])
    mixed = torch.arange(60).unsqueeze(0) < lengths.unsqueeze(1)
    groups = size_groups(mixed, 16, 64)
    assert [(len(g), length) for g, length in groups] == [(32, 5), (32, 60)]


@pytest.mark.parametrize("with_bias", [False, True])
def test_size_grouped_attention_equals_one_padded_call(with_bias):
    """Groups change the work done, not the result: outputs and gradients match one padded call."""
    x, mask = _ragged()
    bias = torch.randn(x.size(0), 4, x.size(1), x.size(1)) if with_bias else None
    attn = MultiHeadSelfAttention(16, 4).eval()
    attn.group_overhead = 0  # these graphs are so small that every group would merge
    results = []
    for group_size in (0, 3):
        attn.group_size = group_size
        out = attn(x, mask, bias)
        grad, = torch.autograd.grad((out[mask] ** 2).sum(), x)
        results.append((out[mask], grad[mask]))
    (out0, grad0), (out1, grad1) = results
    assert torch.allclose(out0, out1, atol=1e-5)
    assert torch.allclose(grad0, grad1, atol=1e-5)
    assert torch.allclose(out1, reference_attention(attn, x.detach(), mask, bias)[mask], atol=1e-5)


def test_token_selected_attention_is_attention_over_the_kept_tokens_only(padded):
    """With a selector, each graph attends among its kept tokens (bias restricted to kept pairs) and
    every other slot of the output is 0: checked one graph at a time against textbook attention."""
    x, mask = padded
    bias = torch.randn(3, 4, 6, 6)
    attn = MultiHeadSelfAttention(16, 4).eval()
    attn.token_selector = TokenSelector(16, ratio=0.5).eval()
    out = attn(x, mask, bias)
    index, kept, _ = attn.token_selector(x, mask, 0)
    for b in range(x.size(0)):
        chosen = index[b][kept[b]]
        assert mask[b, chosen].all() and chosen.numel() == math.ceil(int(mask[b].sum()) / 2)
        sub_bias = bias[b][:, chosen][:, :, chosen]
        ref = reference_attention(attn, x[b, chosen].unsqueeze(0), torch.ones(1, chosen.numel(), dtype=torch.bool),
                                  sub_bias.unsqueeze(0))[0]
        assert torch.allclose(out[b, chosen], ref, atol=1e-5)
        dropped = torch.ones(x.size(1), dtype=torch.bool)
        dropped[chosen] = False
        assert (out[b, dropped] == 0).all()


def test_gather_pairs_picks_the_kept_rows_and_columns():
    from gtsp.nn.attention import gather_pairs

    bias = torch.randn(2, 3, 7, 7)
    index = torch.tensor([[4, 0, 6], [1, 2, 5]])
    expected = torch.stack([bias[b][:, index[b]][:, :, index[b]] for b in range(2)])
    assert torch.equal(gather_pairs(bias, index), expected)
