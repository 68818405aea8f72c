"""Each gradient/activation proxy on tiny networks against an independent direct computation."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from zenfx.data import draw, tensor_batches
from zenfx.errors import UsageError
from zenfx.proxies.base import ProxyContext, get_proxy

torch.set_num_threads(1)


def _ctx(batches=None, **kw) -> ProxyContext:
    base = dict(input_size=(5,), batch_size=6, seed=3, num_classes=4)
    base.update(kw)
    return ProxyContext(batches=batches, **base)  # type: ignore[arg-type]


def _fixed(x: torch.Tensor, y: torch.Tensor):
    return tensor_batches(x, y, batch_size=x.shape[0], shuffle=False)


def _linear(seed=0, cin=5, cout=4, bias=True) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(cin, cout, bias=bias).double()


def _ce_grad_linear(W, b, x, y):
    """dL/dW, dL/db and dL/dz of mean cross-entropy of z = x W^T + b, by hand (numpy)."""
    z = x @ W.T + b
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    d = p.copy()
    d[np.arange(len(y)), y] -= 1
    d /= len(y)
    return d.T @ x, d.sum(0), d, z


def _data(n=6, cin=5, classes=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, cin, generator=g, dtype=torch.float64)
    y = torch.randint(0, classes, (n,), generator=g)
    return x, y


# The proxies take ctx.dtype for the inputs; use float64 end to end for tight comparisons.
def _run(name, net, x, y, **kw):
    ctx = _ctx(_fixed(x, y), dtype=torch.float64, **kw)
    return get_proxy(name).fn(copy.deepcopy(net), ctx)


def test_registry_lists_every_issue_proxy_with_graph_and_docstring():
    import importlib

    for name, graph in [("zico", "vcnn"), ("synflow", "original"), ("snip", "original"), ("grasp", "original"),
                        ("fisher", "original"), ("grad_norm", "original"), ("jacob_cov", "original"),
                        ("naswot", "original"), ("zen", "vcnn"), ("phi", "vcnn"), ("params", "original"),
                        ("flops", "original")]:
        spec = get_proxy(name)
        assert spec.graph == graph, name
        assert spec.reference and spec.summary
        mod = importlib.import_module(f"zenfx.proxies.{name}")
        assert mod.__doc__ and len(mod.__doc__) > 80, name
    for name in ("zico", "snip", "grasp", "fisher", "grad_norm", "jacob_cov", "naswot"):
        assert get_proxy(name).needs_data
    for name in ("zico", "snip", "grasp", "fisher", "grad_norm"):
        assert get_proxy(name).needs_head
    assert not get_proxy("synflow").needs_data


def test_synflow_two_layer_linear_by_hand():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 7, bias=False), nn.ReLU(), nn.Linear(7, 3, bias=False))
    W1 = net[0].weight.detach().double().abs().numpy()
    W2 = net[2].weight.detach().double().abs().numpy()
    # all-ones input, |W|: R = 1^T |W2| |W1| 1; |w * dR/dw| summed over both layers gives 2R
    h = W1 @ np.ones(5)
    R = np.ones(3) @ W2 @ h
    s1 = (W1 * np.outer(np.ones(3) @ W2, np.ones(5))).sum()
    s2 = (W2 * np.outer(np.ones(3), h)).sum()
    assert s1 + s2 == pytest.approx(2 * R)
    v = get_proxy("synflow").fn(copy.deepcopy(net), _ctx())
    assert v == pytest.approx(s1 + s2, rel=1e-12)
    # BN is removed and the sign of weights is ignored
    bn_net = nn.Sequential(nn.Linear(5, 7, bias=False), nn.BatchNorm1d(7), nn.ReLU(), nn.Linear(7, 3, bias=False))
    bn_net[0].weight.data = -net[0].weight.data.clone()
    bn_net[3].weight.data = net[2].weight.data.clone()
    assert get_proxy("synflow").fn(bn_net, _ctx()) == pytest.approx(v, rel=1e-12)


def test_snip_and_grad_norm_of_linear_classifier_by_hand():
    net = _linear()
    x, y = _data()
    W, b = net.weight.detach().numpy(), net.bias.detach().numpy()
    gW, gb, _d, _z = _ce_grad_linear(W, b, x.numpy(), y.numpy())
    assert _run("snip", net, x, y) == pytest.approx(np.abs(W * gW).sum(), rel=1e-10)
    assert _run("grad_norm", net, x, y) == pytest.approx(np.linalg.norm(gW), rel=1e-10)
    two = nn.Sequential(_linear(1, 5, 6), nn.ReLU(), _linear(2, 6, 4))
    n1 = np.linalg.norm(_grads(two, x, y)[0])
    n2 = np.linalg.norm(_grads(two, x, y)[1])
    assert _run("grad_norm", two, x, y) == pytest.approx(n1 + n2, rel=1e-10)


def _grads(net, x, y):
    net = copy.deepcopy(net)
    loss = nn.functional.cross_entropy(net(x), y)
    ws = [m.weight for m in net.modules() if isinstance(m, nn.Linear)]
    return [g.numpy() for g in torch.autograd.grad(loss, ws)]


def test_grasp_against_full_hessian():
    net = nn.Sequential(_linear(1, 5, 3), nn.Tanh(), _linear(2, 3, 4))
    x, y = _data()
    ws = [net[0].weight, net[2].weight]
    shapes = [w.shape for w in ws]
    flat0 = torch.cat([w.detach().reshape(-1) for w in ws])

    def loss_of(flat):
        a = flat[: shapes[0].numel()].reshape(shapes[0])
        c = flat[shapes[0].numel():].reshape(shapes[1])
        h = torch.tanh(x @ a.T + net[0].bias.detach())
        return nn.functional.cross_entropy(h @ c.T + net[2].bias.detach(), y)

    H = torch.autograd.functional.hessian(loss_of, flat0)
    g = torch.autograd.functional.jacobian(loss_of, flat0)
    want = float(-(flat0 * (H @ g)).sum())
    assert _run("grasp", net, x, y) == pytest.approx(want, rel=1e-8)


def test_fisher_linear_by_hand_broadcast_over_fan_in():
    net = _linear()
    x, y = _data()
    W, b = net.weight.detach().numpy(), net.bias.detach().numpy()
    _gW, _gb, d, z = _ce_grad_linear(W, b, x.numpy(), y.numpy())
    F = 0.5 * ((z * d) ** 2).mean(0)  # per channel
    assert _run("fisher", net, x, y) == pytest.approx(F.sum() * 5, rel=1e-10)


def test_fisher_conv_sums_over_space():
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 3, 3, padding=1).double()
    net = nn.Sequential(conv, nn.Flatten(), _linear(4, 3 * 4 * 4, 4))
    g = torch.Generator().manual_seed(5)
    x = torch.randn(4, 2, 4, 4, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3])
    a = conv(x)
    a.retain_grad()
    out = net[2](net[1](a))
    nn.functional.cross_entropy(out, y).backward()
    fc = 0.5 * (a.detach() * a.grad).sum(dim=(2, 3)).pow(2).mean(0)
    z = net[1](a).detach()
    zz = net[2](z)
    zz.retain_grad()
    nn.functional.cross_entropy(zz, y).backward()
    fl = 0.5 * (zz.detach() * zz.grad).pow(2).mean(0)
    want = float(fc.sum()) * 2 * 9 + float(fl.sum()) * 48
    ctx = ProxyContext(input_size=(2, 4, 4), batch_size=4, num_classes=4, dtype=torch.float64, batches=_fixed(x, y))
    assert get_proxy("fisher").fn(copy.deepcopy(net), ctx) == pytest.approx(want, rel=1e-9)


def test_jacob_cov_against_per_sample_jacobians():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3)).double()
    x, y = _data()
    J = np.stack([torch.autograd.functional.jacobian(lambda v: net(v[None]).sum(), xi).numpy() for xi in x])
    C = np.corrcoef(J)
    v, _ = np.linalg.eig(C)
    v = v.real
    want = -np.sum(np.log(v + 1e-5) + 1.0 / (v + 1e-5))
    assert _run("jacob_cov", net, x, y) == pytest.approx(want, rel=1e-6)


def test_naswot_hamming_kernel_by_hand_modules_and_functional():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 9), nn.ReLU(), nn.Linear(9, 7), nn.ReLU(), nn.Linear(7, 4)).double()
    x, y = _data()
    with torch.no_grad():
        p1 = net[0](x)
        p2 = net[2](torch.relu(p1))
    K = np.zeros((6, 6))
    for pre in (p1, p2):
        c = (pre > 0).numpy()
        for i in range(6):
            for j in range(6):
                K[i, j] += np.sum(c[i] == c[j])
    want = np.linalg.slogdet(K)[1]
    assert _run("naswot", net, x, y) == pytest.approx(want, rel=1e-10)

    class Functional(nn.Module):
        def __init__(self, seq):
            super().__init__()
            self.a, self.b, self.c = seq[0], seq[2], seq[4]

        def forward(self, v):
            return self.c(torch.relu(self.b(nn.functional.relu(self.a(v)))))

    import torch.fx as fx

    gm = fx.symbolic_trace(Functional(net))
    assert _run("naswot", gm, x, y) == pytest.approx(want, rel=1e-10)


def test_naswot_without_relu_is_usage_error():
    x, y = _data()
    with pytest.raises(UsageError):
        _run("naswot", _linear(), x, y)


def test_zico_two_batches_by_hand():
    net = nn.Sequential(_linear(1, 5, 6), nn.ReLU(), _linear(2, 6, 4))
    x1, y1 = _data(seed=1)
    x2, y2 = _data(seed=2)
    x = torch.cat([x1, x2])
    y = torch.cat([y1, y2])
    provider = tensor_batches(x, y, batch_size=6, shuffle=False)
    g1, g2 = _grads(net, x1, y1), _grads(net, x2, y2)
    want = 0.0
    for a, b in zip(g1, g2, strict=True):
        st = np.stack([a.reshape(-1), b.reshape(-1)])
        std = st.std(0)
        mean = np.abs(st).mean(0)
        nz = std != 0
        want += math.log(np.sum(mean[nz] / std[nz]))
    ctx = _ctx(provider, dtype=torch.float64)
    assert get_proxy("zico").fn(copy.deepcopy(net), ctx) == pytest.approx(want, rel=1e-10)


def test_zico_skips_layers_with_zero_sum():
    from zenfx.proxies.zico import zico_from_grads

    same = torch.ones(2, 5, dtype=torch.float64)  # std 0 everywhere: layer skipped
    varied = torch.tensor([[1.0, 2.0], [3.0, 2.0]], dtype=torch.float64)
    # element 0: mean|g| 2, std 1 -> 2; element 1: std 0 -> dropped
    assert zico_from_grads([same, varied]) == pytest.approx(math.log(2.0))


def test_gaussian_default_batches_are_seeded_and_labelled():
    ctx = ProxyContext(input_size=(3, 4, 4), batch_size=5, seed=7, num_classes=10)
    (a, ya), (b, yb) = draw(ctx, 2)
    (a2, ya2), _ = draw(ctx, 2)
    assert a.shape == (5, 3, 4, 4) and ya.shape == (5,)
    assert torch.equal(a, a2) and torch.equal(ya, ya2) and not torch.equal(a, b)
    assert int(ya.max()) < 10 and ya.dtype == torch.long


def test_data_providers_npz_tensor_dataset(tmp_path):
    from zenfx.data import as_provider, dataset_batches, npz_batches

    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, size=(10, 8, 8, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=10)
    path = tmp_path / "b.npz"
    np.savez(path, x=imgs, y=labels)
    x, y = next(npz_batches(path, batch_size=4, shuffle=False)(0))
    assert x.shape == (4, 3, 8, 8) and x.dtype == torch.float32
    assert torch.equal(y, torch.as_tensor(labels[:4]))
    assert abs(float(x.mean())) < 3  # normalised
    ds = torch.utils.data.TensorDataset(torch.randn(9, 3, 8, 8), torch.arange(9))
    xb, yb = next(dataset_batches(ds, 3, shuffle=False)(0))
    assert xb.shape == (3, 3, 8, 8) and yb.tolist() == [0, 1, 2]
    p = as_provider(str(path), batch_size=5)
    assert next(p(1))[0].shape[0] == 5
    assert as_provider(None, batch_size=5) is None
    with pytest.raises(UsageError):
        npz_batches(tmp_path / "missing.npz")
