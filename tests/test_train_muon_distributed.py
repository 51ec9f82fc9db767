"""convergent.train.muon.Muon sharded over 2 gloo processes equals the one-process step."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor import Shard, distribute_tensor

from convergent.errors import ConvergentError
from convergent.train.muon import PADDING, Muon, replicated_group, shard_rounds

SHAPES = [(8, 12), (12, 8), (8, 12), (16, 16), (8, 12), (4, 6), (12, 8)]
NO_GRAD = 5  # this parameter gets no gradient: Muon leaves it alone
STEPS = 3


def _steps(opt: Muon, loss) -> int:
    """STEPS steps of ``opt`` on ``loss()``; returns how often it orthogonalised."""
    calls = 0
    plain = opt.orthogonaliser

    def counting(tensor):
        nonlocal calls
        calls += 1
        return plain(tensor)

    opt.orthogonaliser = counting
    for _ in range(STEPS):
        opt.zero_grad()
        loss().backward()
        opt.step()
    return calls


def _run(process_group=None) -> tuple[list[torch.Tensor], dict, int]:
    """STEPS Muon steps on fixed parameters: (parameters, state_dict, orthogonaliser calls)."""
    generator = torch.Generator().manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(*s, generator=generator)) for s in SHAPES]
    groups = [{"params": params[:4]},
              {"params": params[4:], "nesterov": False, "weight_decay": 0.0, "lr": 0.05}]
    opt = Muon(groups, lr=0.02, weight_decay=0.1, adjust_lr_fn="match_rms_adamw",
               process_group=process_group)
    calls = _steps(opt, lambda: sum((p ** 3).sum() + p.sum()
                                    for i, p in enumerate(params) if i != NO_GRAD))
    return [p.detach().clone() for p in params], opt.state_dict(), calls


def _worker(rank: int, world: int, init: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        params, state, calls = _run(replicated_group())
        torch.save({"params": params, "state": state, "calls": calls}, f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


def _model() -> torch.nn.Sequential:
    torch.manual_seed(0)
    widths = [7, 5, 6, 6, 6, 7]  # odd row counts: uneven FSDP2 shards
    layers: list[torch.nn.Module] = []
    for a, b in itertools.pairwise(widths):
        layers += [torch.nn.Linear(a, b, bias=False), torch.nn.Tanh()]
    return torch.nn.Sequential(*layers)


def _run_model(model: torch.nn.Module) -> int:
    """STEPS Muon steps on a fixed batch; returns the orthogonaliser calls."""
    opt = Muon(list(model.parameters()), lr=0.02, weight_decay=0.1,
               adjust_lr_fn="match_rms_adamw")
    inputs = torch.randn(4, 7, generator=torch.Generator().manual_seed(1))
    return _steps(opt, lambda: model(inputs).pow(2).sum())


def _fsdp_worker(rank: int, world: int, init: str, out: str) -> None:
    from torch.distributed.fsdp import fully_shard

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        mesh = init_device_mesh("cpu", (world,))
        model = _model()
        for layer in model:
            if isinstance(layer, torch.nn.Linear):
                fully_shard(layer, mesh=mesh)
        fully_shard(model, mesh=mesh)
        calls = _run_model(model)
        params = [p.full_tensor() for p in model.parameters()]
        torch.save({"params": params, "calls": calls}, f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


def test_shard_rounds_deal_same_shapes_evenly() -> None:
    keys = [(s,) for s in SHAPES]
    rounds = shard_rounds(keys, 2)
    dealt = [i for r in rounds for i in r if i != PADDING]
    assert sorted(dealt) == list(range(len(SHAPES)))
    for r in rounds:
        assert len({keys[i] for i in r if i != PADDING}) == 1
    costs = [sum(math.prod(SHAPES[r[k]]) * min(SHAPES[r[k]]) for r in rounds
                 if r[k] != PADDING) for k in range(2)]
    assert abs(costs[0] - costs[1]) <= 8 * 8 * 12  # at most one (8, 12) matrix apart
    assert sorted(shard_rounds(keys, 1)) == [(i,) for i in range(len(SHAPES))]
    assert shard_rounds([], 2) == []


def test_one_rank_is_the_one_process_step_bit_for_bit(tmp_path) -> None:
    alone, _, calls = _run()
    assert calls == STEPS * (len(SHAPES) - 1)
    assert Muon([torch.nn.Parameter(torch.zeros(2, 2))]).world() == (0, 1)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0,
                            world_size=1)
    try:
        assert replicated_group() is None  # one rank: build_optimizers shards nothing
        grouped, _, grouped_calls = _run(dist.group.WORLD)
        mesh = init_device_mesh("cpu", (1,))
        mixed = [torch.nn.Parameter(distribute_tensor(torch.ones(2, 2), mesh, [Shard(0)])),
                 torch.nn.Parameter(torch.ones(2, 2))]
        for p in mixed:
            p.grad = torch.ones_like(p)
        with pytest.raises(ConvergentError, match="all of a parameter group"):
            Muon(mixed).step()
    finally:
        dist.destroy_process_group()
    assert grouped_calls == calls
    for a, b in zip(alone, grouped, strict=True):
        assert torch.equal(a, b)


@pytest.mark.slow
def test_two_gloo_processes_equal_one_process_and_share_the_work(tmp_path) -> None:
    out = str(tmp_path / "rank")
    mp.spawn(_worker, args=(2, f"file://{tmp_path / 'store'}", out), nprocs=2, join=True)
    reference, reference_state, single_calls = _run()
    ranks = [torch.load(f"{out}.{r}") for r in range(2)]
    for got in ranks:
        for a, b in zip(got["params"], reference, strict=True):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
        assert got["state"]["param_groups"] == reference_state["param_groups"]
        for index, slots in reference_state["state"].items():  # same checkpoint layout
            assert torch.equal(got["state"]["state"][index]["momentum_buffer"],
                               slots["momentum_buffer"])
    for a, b in zip(ranks[0]["params"], ranks[1]["params"], strict=True):
        assert torch.equal(a, b)
    # each matrix is orthogonalised once, by one rank, and both ranks share the work
    assert ranks[0]["calls"] + ranks[1]["calls"] == single_calls
    assert 0 < ranks[0]["calls"] < single_calls


@pytest.mark.slow
def test_fsdp2_shards_equal_one_process(tmp_path) -> None:
    out = str(tmp_path / "rank")
    mp.spawn(_fsdp_worker, args=(2, f"file://{tmp_path / 'store'}", out), nprocs=2,
             join=True)
    model = _model()
    single_calls = _run_model(model)
    ranks = [torch.load(f"{out}.{r}") for r in range(2)]
    for got in ranks:
        for a, b in zip(got["params"], model.parameters(), strict=True):
            torch.testing.assert_close(a, b.detach(), atol=1e-6, rtol=0)
    with torch.no_grad():
        moved = min(float((a - b).abs().max()) for a, b in zip(
            model.parameters(), _model().parameters(), strict=True))
    assert moved > 1e-3  # the steps changed every matrix, so agreement means something
    assert ranks[0]["calls"] + ranks[1]["calls"] == single_calls
    assert 0 < ranks[0]["calls"] < single_calls
