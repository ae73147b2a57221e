"""Would a batched twin Q be faster than SB3's two ``nn.Sequential``? Interleaved timing of one critic step.

One step = the critic's training pass (forward + backward on B rows, fused Adam) and DSPG's baseline pass
(forward on 2B noised rows), for three implementations of the same two MLPs:
- ``sb3``: SB3's ``ContinuousCritic`` layout, one ``nn.Sequential`` per Q (what DSPG uses);
- ``baddbmm``: weights stacked ``(n, in, out)``, one batched matmul per layer (SBX / REDQ-style ensembles);
- ``vmap``: ``torch.func.stack_module_state`` + ``vmap(functional_call)`` over the stacked parameters.

    python benchmarks/ensemble_check.py --threads 1
"""

import argparse
import copy
import itertools
import statistics
import time

import torch as th
from torch import nn
from torch.func import functional_call, stack_module_state


def mlp(in_dim: int, hidden: list[int]) -> nn.Sequential:
    sizes = [in_dim, *hidden]
    layers: list[nn.Module] = []
    for n_in, n_out in itertools.pairwise(sizes):
        layers += [nn.Linear(n_in, n_out), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(sizes[-1], 1))


class TwinSequential(nn.Module):
    """SB3's layout: ``n`` independent MLPs, evaluated one after the other."""

    def __init__(self, in_dim: int, hidden: list[int], n: int = 2):
        super().__init__()
        self.q_networks = nn.ModuleList(mlp(in_dim, hidden) for _ in range(n))

    def forward(self, x: th.Tensor) -> th.Tensor:
        return th.cat([q(x) for q in self.q_networks], dim=1)


class StackedBaddbmm(nn.Module):
    """The same ``n`` MLPs with stacked weights, one ``baddbmm`` per layer."""

    def __init__(self, in_dim: int, hidden: list[int], n: int = 2):
        super().__init__()
        nets = [mlp(in_dim, hidden) for _ in range(n)]
        linears = [[m for m in net if isinstance(m, nn.Linear)] for net in nets]
        self.weights = nn.ParameterList(
            nn.Parameter(th.stack([layers[k].weight.T for layers in linears])) for k in range(len(linears[0]))
        )
        self.biases = nn.ParameterList(
            nn.Parameter(th.stack([layers[k].bias[None] for layers in linears])) for k in range(len(linears[0]))
        )

    def forward(self, x: th.Tensor) -> th.Tensor:
        h = x.unsqueeze(0).expand(len(self.weights[0]), -1, -1)
        for k, (weight, bias) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = th.baddbmm(bias, h, weight)
            h = th.relu(h) if k < len(self.weights) - 1 else h
        return h.squeeze(-1).T


class StackedVmap(nn.Module):
    """The same ``n`` MLPs through ``torch.func.vmap`` over stacked parameters."""

    def __init__(self, in_dim: int, hidden: list[int], n: int = 2):
        super().__init__()
        nets = [mlp(in_dim, hidden) for _ in range(n)]
        params, _ = stack_module_state(nets)
        self.names = list(params)
        self.params = nn.ParameterList(nn.Parameter(params[name]) for name in self.names)
        self.base = copy.deepcopy(nets[0]).to("meta")

    def forward(self, x: th.Tensor) -> th.Tensor:
        def one(params: tuple[th.Tensor, ...], x: th.Tensor) -> th.Tensor:
            return functional_call(self.base, dict(zip(self.names, params, strict=True)), (x,))

        return th.vmap(one, in_dims=(0, None))(tuple(self.params), x).squeeze(-1).T


def step(model: nn.Module, optimizer: th.optim.Optimizer, x: th.Tensor, noised: th.Tensor, target: th.Tensor) -> None:
    """The critic's training pass on ``x`` and a baseline pass on the ``noised`` rows."""
    loss = (model(x) - target).pow(2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    with th.no_grad():
        model(noised)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 256])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    th.set_num_threads(args.threads)
    th.manual_seed(0)
    print(f"| critic input (obs + action) | {' | '.join(['sb3', 'baddbmm', 'vmap'])} | baddbmm / sb3 | vmap / sb3 |")
    print("|---|---|---|---|---|---|")
    for name, in_dim in (("Pendulum 3 + 1", 4), ("HalfCheetah 17 + 6", 23)):
        x, noised, target = th.randn(args.batch, in_dim), th.randn(2 * args.batch, in_dim), th.randn(args.batch, 1)
        models = {cls.__name__: cls(in_dim, args.hidden) for cls in (TwinSequential, StackedBaddbmm, StackedVmap)}
        optimizers = {key: th.optim.Adam(model.parameters(), fused=True) for key, model in models.items()}
        times: dict[str, list[float]] = {key: [] for key in models}
        for key in models:
            for _ in range(args.steps // 4):
                step(models[key], optimizers[key], x, noised, target)
        for _ in range(args.reps):
            for key in models:
                start = time.perf_counter()
                for _ in range(args.steps):
                    step(models[key], optimizers[key], x, noised, target)
                times[key].append(1000 * (time.perf_counter() - start) / args.steps)
        med = [statistics.median(times[key]) for key in models]
        print(f"| {name} | {' | '.join(f'{m:.2f} ms' for m in med)} | {med[1] / med[0]:.2f} | {med[2] / med[0]:.2f} |")


if __name__ == "__main__":
    main()
