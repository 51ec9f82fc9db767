"""Muon with a float32 Newton-Schulz step on CPU, sharded across data-parallel ranks.

``torch.optim.Muon`` orthogonalises every update in bfloat16. On CPUs without bf16 matrix
units that is 4.5-6x slower per training step than the same iteration in float32
(``benchmarks/bench_addition.py`` measures it), and it gains nothing in accuracy.
torch 2.13's ``Muon`` takes no custom orthogonalisation function, so :class:`Muon` is a
subclass whose ``step`` repeats torch's single-tensor update (same momentum, Nesterov
blend, decoupled weight decay, learning-rate adjustment and state layout, so checkpoints
interchange) and picks the orthogonaliser per tensor: float32 on CPU, torch's own bfloat16
one elsewhere (CUDA has fast bf16 matrix units). ``tests/test_train_muon.py`` checks that
with ``float32=False`` the update is bit-identical to ``torch.optim.Muon``.

Distributed (``process_group`` given, world size W > 1, parameters replicated as under DDP,
whose gradients are already averaged when ``step`` runs). Newton-Schulz is the expensive
part of a Muon step (five matrix products per matrix, against one ``lerp`` for momentum),
and without sharding every rank repeats it for every matrix. As in modded-nanogpt's and
nanochat's distributed Muon, each rank here orthogonalises only its share:

1. every rank updates every momentum buffer (cheap, and it keeps the optimizer state, and
   so the checkpoint, identical on all ranks and to the one-process layout);
2. :func:`shard_rounds` deals the matrices, most expensive first, to the least-loaded of
   the W ranks and groups them into rounds of one same-shaped matrix per rank;
3. per round, each rank computes the Nesterov blend, Newton-Schulz, weight decay and update
   of its own matrix and ``torch.distributed.all_gather`` sends the updated matrix to every
   rank (asynchronously, so the next round's Newton-Schulz overlaps the exchange).

Communication per step: one all-gather of the Muon parameters (each rank sends ~1/W of
them and receives the rest), plus padding where a shape's count is not a multiple of W.
Newton-Schulz work per rank falls W-fold. Each parameter is computed by one rank with the
one-process arithmetic, so all ranks end the step with the one-process parameters.
torch ships no sharded Muon (2.13), so this round plan is ours; the collectives are torch's.

FSDP2 (``fully_shard``: parameters, gradients and momentum are DTensors on a 1-D device
mesh; no ``process_group`` needed): momentum stays sharded; per round each matrix's
Nesterov blend is gathered whole (``full_tensor``), its owner orthogonalises it, one
all-gather hands the orthogonalised matrices to all ranks, and each rank steps its own rows
(``distribute_tensor`` without communication). That is two all-gathers of the Muon
matrices per step, against the W-fold Newton-Schulz work of orthogonalising all of them on
every rank. The momentum buffers are then DTensors, like FSDP2's AdamW state.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.optim import _muon

from convergent.errors import ConvergentError

PADDING = -1


def newton_schulz_float32(grad: torch.Tensor, ns_coefficients: tuple[float, float, float],
                          ns_steps: int, eps: float) -> torch.Tensor:
    """torch's ``_zeropower_via_newtonschulz`` (same quintic, coefficients and steps) in
    float32 instead of bfloat16 arithmetic."""
    if ns_steps >= 100:
        raise ValueError("Number of steps must be less than 100 for computational efficiency")
    if grad.ndim != 2:
        raise ValueError("Input tensor gradient must be a 2D matrix")
    a, b, c = ns_coefficients
    x = grad.float()
    tall = grad.size(0) > grad.size(1)
    if tall:
        x = x.T
    x = x / x.norm().clamp(min=eps)
    for _ in range(ns_steps):
        gram = x @ x.T
        update = torch.addmm(gram, gram, gram, beta=b, alpha=c)
        x = torch.addmm(x, update, x, beta=a)
    return (x.T if tall else x).to(grad.dtype)


Orthogonaliser = Callable[[torch.Tensor, tuple[float, float, float], int, float], torch.Tensor]


def shard_rounds(keys: Sequence[tuple[Any, ...]], world: int) -> list[tuple[int, ...]]:
    """Deal matrices to ``world`` ranks: rounds of one index per rank (``PADDING`` = none).

    ``keys[i]`` is matrix i's exchange key, its shape first (shape, dtype, device): every
    index in a round has the same key, so one all-gather moves it. Matrices go, most
    expensive first, to the least-loaded rank (lowest rank on ties), the cost being
    Newton-Schulz's ``rows * cols * min(rows, cols)``. The plan depends only on ``keys``,
    so every rank computes the same one.
    """
    costs = [math.prod(key[0]) * min(key[0]) for key in keys]
    order = sorted(range(len(keys)), key=lambda i: (-costs[i], repr(keys[i]), i))
    loads = [0] * world
    dealt: dict[tuple[Any, ...], list[list[int]]] = {}
    for index in order:
        rank = min(range(world), key=lambda r: (loads[r], r))
        loads[rank] += costs[index]
        dealt.setdefault(keys[index], [[] for _ in range(world)])[rank].append(index)
    rounds = []
    for shares in dealt.values():
        for j in range(max(len(share) for share in shares)):
            rounds.append(tuple(share[j] if j < len(share) else PADDING for share in shares))
    return rounds


def replicated_group() -> Any:
    """``torch.distributed``'s default group when one of more than one rank is initialised
    (the ranks of a DDP run, over which parameters are replicated), else None."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return dist.group.WORLD
    return None


class Muon(torch.optim.Muon):
    """``torch.optim.Muon`` that orthogonalises CPU tensors in float32.

    ``float32``: ``None`` (default) uses float32 for CPU tensors and torch's bfloat16
    iteration for the others; ``True``/``False`` force one or the other everywhere.
    ``process_group``: a ``torch.distributed`` group over which the parameters are
    replicated (DDP); with more than one rank each rank orthogonalises only its share of
    the matrices (module docstring). ``None`` (default): one process, no communication,
    unless the parameters are FSDP2 DTensors, which are sharded over their own mesh.
    """

    def __init__(self, params: Any, *args: Any, float32: bool | None = None,
                 process_group: Any = None, **kwargs: Any) -> None:
        super().__init__(params, *args, **kwargs)
        self.float32 = float32
        self.process_group = process_group

    def orthogonaliser(self, tensor: torch.Tensor) -> Orthogonaliser:
        use_float32 = tensor.device.type == "cpu" if self.float32 is None else self.float32
        return newton_schulz_float32 if use_float32 else _muon._zeropower_via_newtonschulz

    def world(self) -> tuple[int, int]:
        """(rank, world size) in ``process_group``; (0, 1) without one."""
        if self.process_group is None:
            return 0, 1
        import torch.distributed as dist

        return (dist.get_rank(self.process_group),
                dist.get_world_size(self.process_group))

    @staticmethod
    def _blend(group: dict[str, Any], grad: torch.Tensor, buf: torch.Tensor) -> torch.Tensor:
        """The Nesterov blend of gradient and momentum (or the momentum alone)."""
        return grad.lerp(buf, group["momentum"]) if group["nesterov"] else buf

    def _orthogonalise(self, group: dict[str, Any], update: torch.Tensor) -> torch.Tensor:
        return self.orthogonaliser(update)(update, group["ns_coefficients"],
                                           group["ns_steps"], group["eps"])

    @staticmethod
    def _descend(group: dict[str, Any], param: torch.Tensor, update: torch.Tensor) -> None:
        """Decoupled weight decay and the shape-adjusted step along ``update``."""
        lr = float(group["lr"])
        adjusted = _muon._adjust_lr(lr, group["adjust_lr_fn"], param.shape)
        param.mul_(1 - lr * group["weight_decay"])
        param.add_(update, alpha=-adjusted)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One Muon step (torch's ``_single_tensor_muon`` with a per-tensor orthogonaliser),
        sharded over ``process_group`` when it has more than one rank, and over the device
        mesh when the parameters are DTensors (FSDP2)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        rank, world = self.world()
        for group in self.param_groups:
            params: list[torch.Tensor] = []
            grads: list[torch.Tensor] = []
            buffers: list[torch.Tensor] = []
            self._init_group(group, params, grads, buffers)
            dtensors = _dtensor_mesh(group["params"])
            for param, grad, buf in zip(params, grads, buffers, strict=True):
                if grad.ndim != 2:
                    raise ValueError("Param gradient must be a 2D matrix")
                buf.lerp_(grad, 1 - group["momentum"])
                if world == 1 and dtensors is None:
                    self._descend(group, param,
                                  self._orthogonalise(group, self._blend(group, grad, buf)))
            if dtensors is not None:
                self._fully_sharded_update(group, dtensors)
            elif world > 1:
                self._sharded_update(group, rank, world)
        return loss

    def _sharded_update(self, group: dict[str, Any], rank: int, world: int) -> None:
        """Update this rank's share of ``group`` and all-gather every updated parameter."""
        import torch.distributed as dist

        members: list[torch.Tensor] = group["params"]
        keys = [(tuple(p.shape), str(p.dtype), str(p.device)) for p in members]
        pending: list[tuple[Any, list[torch.Tensor], tuple[int, ...]]] = []
        for owners in shard_rounds(keys, world):
            mine = owners[rank]
            sample = members[next(i for i in owners if i != PADDING)]
            if mine == PADDING:
                sent = torch.empty_like(sample, memory_format=torch.contiguous_format)
            else:
                param = members[mine]
                if param.grad is not None:
                    blend = self._blend(group, param.grad, self.state[param]["momentum_buffer"])
                    self._descend(group, param, self._orthogonalise(group, blend))
                sent = param.contiguous()
            # Other ranks' matrices land in place; a copy only where a slot cannot.
            received = [members[index] if index not in (PADDING, mine)
                        and members[index].is_contiguous() else torch.empty_like(sent)
                        for index in owners]
            work = dist.all_gather(received, sent, group=self.process_group, async_op=True)
            pending.append((work, received, owners))
        for work, received, owners in pending:
            work.wait()
            for index, slot in zip(owners, received, strict=True):
                if index != PADDING and slot is not members[index] and index != owners[rank]:
                    members[index].copy_(slot)

    def _fully_sharded_update(self, group: dict[str, Any], mesh: Any) -> None:
        """FSDP2: the owner of each matrix orthogonalises it whole (gathered with
        ``full_tensor``); every rank steps its own rows of the all-gathered results.
        Rounds run one after another, so at most 2W full matrices are held at a time."""
        import torch.distributed as dist
        from torch.distributed.tensor import distribute_tensor

        members: list[Any] = group["params"]
        rank, world = mesh.get_local_rank(), mesh.size()
        keys = [(tuple(p.shape), str(p.dtype), str(p.device)) for p in members]
        for owners in shard_rounds(keys, world):
            stepped = [i for i in owners if i != PADDING and members[i].grad is not None]
            full = {i: self._blend(group, members[i].grad,
                                   self.state[members[i]]["momentum_buffer"]).full_tensor()
                    for i in stepped}
            sample = members[next(i for i in owners if i != PADDING)]
            mine = owners[rank]
            sent = self._orthogonalise(group, full[mine]) if mine in full else torch.zeros(
                sample.shape, dtype=sample.dtype, device=sample.to_local().device)
            received = [torch.empty_like(sent) for _ in owners]
            dist.all_gather(received, sent.contiguous(), group=mesh.get_group())
            for index, update in zip(owners, received, strict=True):
                if index in full:
                    self._descend(group, members[index], distribute_tensor(
                        update, mesh, members[index].placements, src_data_rank=None))


def _dtensor_mesh(params: Sequence[torch.Tensor]) -> Any:
    """The one-dimensional device mesh of DTensor ``params`` (FSDP2), or None if they are
    plain tensors."""
    if not torch.distributed.is_available():
        return None
    from torch.distributed.tensor import DTensor

    meshes = {p.device_mesh for p in params if isinstance(p, DTensor)}
    if not meshes:
        return None
    if len(meshes) > 1 or len(params) > sum(isinstance(p, DTensor) for p in params):
        raise ConvergentError("Muon needs all of a parameter group's matrices sharded "
                              "(FSDP2) on one device mesh, or none of them")
    mesh = meshes.pop()
    if mesh.ndim != 1:
        raise ConvergentError(f"Muon shards over a one-dimensional device mesh only, "
                              f"got {mesh.ndim} dimensions (HSDP is not supported)")
    return mesh
