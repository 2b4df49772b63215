"""Data-parallel training: K gloo processes on CPU must compute the single-process math.

The two multi-process tests share one spawn of 2 workers on loopback (127.0.0.1, a free port),
about 10-15 s on 2 CPU cores, most of it process start-up.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file

from lewm.cli.main import main as cli_main
from lewm.config import Config, ConfigError, apply_overrides, preset
from lewm.losses import LeWMObjective, SIGReg
from lewm.models import LeWM
from lewm.models.pldm import PLDM, build_objective
from lewm.training.batchnorm import GlobalBatchNorm, convert_batchnorm
from lewm.training.trainer import Trainer, train
from lewm.utils import distributed as dist_utils
from lewm.utils.distributed import DistInfo, DistributedError

WORLD = 2
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(fn, args: tuple, timeout: float = 90.0) -> None:
    """Run ``fn(rank, *args)`` in WORLD processes; fail (not hang) past ``timeout`` seconds."""
    ctx = mp.start_processes(fn, args=args, nprocs=WORLD, join=False, start_method="spawn")
    deadline = time.monotonic() + timeout
    while not ctx.join(timeout=1.0):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                if p.is_alive():
                    p.terminate()
            pytest.fail(f"distributed workers did not finish within {timeout} s")


def _torchrun_env(rank: int, port: int) -> None:
    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(WORLD),
        LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )


def _no_dropout(cfg: Config) -> Config:
    return apply_overrides(cfg, ["model.predictor.dropout=0"])


# -- one spawn of 2 gloo workers serves the two tests below (process start-up dominates) --------


def _step(net, objective, pixels, blocks):
    out = net(pixels, blocks)
    terms = objective(out["z"], out["pred"])
    terms["loss"].backward()
    return terms


def _grads(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters()}


def _bn_buffers(model) -> dict[str, torch.Tensor]:
    return {n: b.clone() for n, b in model.named_buffers() if "running" in n}


def _one_step(rank: int, root: Path) -> None:
    """A DDP step on this rank's half of the saved batch, with and without synced BatchNorm."""
    inp = torch.load(root / "inputs.pt", weights_only=False)
    b = inp["pixels"].shape[0] // WORLD
    shard = slice(rank * b, (rank + 1) * b)
    results = {}
    for sync in (True, False):
        model = LeWM(inp["model_config"])
        model.load_state_dict(inp["state"])
        if sync:
            convert_batchnorm(model)
        net = torch.nn.parallel.DistributedDataParallel(model)
        objective = LeWMObjective(0.09, SIGReg(num_proj=32, seed=5, distributed=True))
        terms = _step(net, objective, inp["pixels"][shard], inp["blocks"][shard])
        loss = terms["loss"].detach().clone()
        dist.all_reduce(loss)  # mean of the ranks' losses = the global-batch loss
        results[sync] = {
            "loss": loss / WORLD,
            "sigreg": terms["sigreg"].detach(),
            "grads": _grads(model),
            "buffers": _bn_buffers(model),
        }
    # PLDM: its batch-wise VICReg terms see every rank's latents (a differentiable all-gather)
    model = PLDM(inp["pldm_config"])
    model.load_state_dict(inp["pldm_state"])
    convert_batchnorm(model)
    net = torch.nn.parallel.DistributedDataParallel(model)
    objective = build_objective(inp["pldm_config"], inp["train_config"], distributed=True)
    terms = objective(**net(inp["pixels"][shard], inp["blocks"][shard]))
    terms["loss"].backward()
    loss = terms["loss"].detach().clone()
    dist.all_reduce(loss)
    results["pldm"] = {
        "loss": loss / WORLD,
        "variance": terms["variance"].detach(),
        "covariance": terms["covariance"].detach(),
        "grads": _grads(model),
    }
    torch.save(results, root / f"rank{rank}.pt")


def _worker(rank: int, port: int, cfg_dict: dict, data: str, root: str) -> None:
    torch.set_num_threads(1)
    cfg, root_path = Config.from_dict(cfg_dict), Path(root)
    _torchrun_env(rank, port)
    info = dist_utils.init("cpu")  # from the torchrun variables: gloo on loopback
    assert (info.rank, info.world_size, info.backend) == (rank, WORLD, "gloo")
    try:
        _one_step(rank, root_path)
        # three training jobs in this process group (the trainer reuses an initialised group)
        train(cfg, data, root_path / "ddp_full", progress=False, distributed=True)
        train(cfg, data, root_path / "ddp_cut", progress=False, distributed=True, stop_after=3)
        # the second half streamed from disk by a loader process per rank, each reading only
        # its rank's share: the weights must still equal the in-memory run's bit for bit
        streamed = apply_overrides(cfg, ["data.mode=stream", "data.workers=1"])
        res = train(
            streamed, data, root_path / "ddp_cut", progress=False, distributed=True, resume=True
        )
        assert dist.is_initialized()  # not the trainer's group: left alone
    finally:
        dist_utils.shutdown(info)
    result = {"steps": res.steps, "rank": res.rank}
    (root_path / f"result{rank}.json").write_text(json.dumps(result))


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory, toy_h5):
    """Run the 2-process workload once; returns (root, training config)."""
    root = tmp_path_factory.mktemp("ddp")
    cfg = apply_overrides(
        _no_dropout(preset("tiny")),
        ["train.steps=6", "train.ckpt_every=2", "train.val_every=3", "train.log_every=1"],
    )
    pldm_cfg = preset("tiny", ["model.kind=pldm", "model.predictor.dropout=0"])
    torch.manual_seed(3)
    B = 8
    torch.save(
        {
            "model_config": cfg.model,
            "state": LeWM(cfg.model).state_dict(),
            "pldm_config": pldm_cfg.model,
            "pldm_state": PLDM(pldm_cfg.model).state_dict(),
            "train_config": pldm_cfg.train,
            "pixels": torch.randint(0, 256, (B, 4, 16, 16, 3), dtype=torch.uint8),  # (B, N+1, ...)
            "blocks": torch.randn(B, 3, cfg.model.action_block_dim),  # (B, N, Ab)
        },
        root / "inputs.pt",
    )
    _spawn(_worker, (_free_port(), cfg.to_dict(), toy_h5, str(root)))
    return root, cfg


def test_two_processes_equal_one_process_on_the_union_batch(ddp_run):
    root, _ = ddp_run
    inp = torch.load(root / "inputs.pt", weights_only=False)
    model = LeWM(inp["model_config"])
    model.load_state_dict(inp["state"])
    objective = LeWMObjective(0.09, SIGReg(num_proj=32, seed=5))
    ref_terms = _step(model, objective, inp["pixels"], inp["blocks"])  # the concatenated batch
    ref_grads, ref_buffers = _grads(model), _bn_buffers(model)
    r0, r1 = (torch.load(root / f"rank{r}.pt", weights_only=False) for r in range(WORLD))

    synced = r0[True]
    tol = {"rtol": 1e-5, "atol": 1e-5}
    torch.testing.assert_close(synced["loss"], ref_terms["loss"].detach(), **tol)
    torch.testing.assert_close(synced["sigreg"], ref_terms["sigreg"].detach(), **tol)
    assert torch.equal(r0[True]["sigreg"], r1[True]["sigreg"])  # same directions, global ECF
    assert synced["grads"].keys() == ref_grads.keys()
    for name, g in ref_grads.items():
        torch.testing.assert_close(synced["grads"][name], g, **tol, msg=name)
        assert torch.equal(r0[True]["grads"][name], r1[True]["grads"][name]), name
    for name, buf in ref_buffers.items():  # running statistics of the global batch
        torch.testing.assert_close(synced["buffers"][name], buf, **tol, msg=name)

    # without synchronised BatchNorm each rank normalises its own shard: a different function
    unsynced = r0[False]
    assert not torch.allclose(unsynced["sigreg"], ref_terms["sigreg"].detach(), rtol=1e-3)


def test_pldm_two_processes_equal_one_process_on_the_union_batch(ddp_run):
    root, _ = ddp_run
    inp = torch.load(root / "inputs.pt", weights_only=False)
    model = PLDM(inp["pldm_config"])
    model.load_state_dict(inp["pldm_state"])
    objective = build_objective(inp["pldm_config"], inp["train_config"])
    ref = objective(**model(inp["pixels"], inp["blocks"]))  # the concatenated batch
    ref["loss"].backward()
    ref_grads = _grads(model)
    r0, r1 = (torch.load(root / f"rank{r}.pt", weights_only=False)["pldm"] for r in range(WORLD))
    tol = {"rtol": 1e-5, "atol": 1e-5}
    torch.testing.assert_close(r0["loss"], ref["loss"].detach(), **tol)
    for term in ("variance", "covariance"):  # global-batch statistics, the same on each rank
        torch.testing.assert_close(r0[term], ref[term].detach(), **tol)
        assert torch.equal(r0[term], r1[term])
    assert ref["variance"] > 0 and ref["covariance"] > 0  # the terms were not trivially zero
    for name, g in ref_grads.items():
        torch.testing.assert_close(r0["grads"][name], g, **tol, msg=name)


def test_two_process_training_checkpoints_resumes_and_matches_single_process(
    ddp_run, tmp_path, toy_h5
):
    root, cfg = ddp_run
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the workers; a tiny model only loses from more threads
    try:
        train(cfg, toy_h5, tmp_path / "single", progress=False)
    finally:
        torch.set_num_threads(threads)
    for r in range(WORLD):
        assert json.loads((root / f"result{r}.json").read_text()) == {"steps": 6, "rank": r}
    model = LeWM.from_pretrained(root / "ddp_full")  # plain BatchNorm model, same keys
    assert model.config.latent_dim == cfg.model.latent_dim
    ckpt = LeWM.from_pretrained(root / "ddp_full" / "checkpoints" / "step_0000004")
    assert ckpt.metadata["step"] == 4
    state = torch.load(
        root / "ddp_full" / "checkpoints" / "step_0000004" / "training_state.pt",
        weights_only=True,
    )
    assert len(state["rank_rng"]) == WORLD

    full = load_file(str(root / "ddp_full" / "model" / "model.safetensors"))
    cut = load_file(str(root / "ddp_cut" / "model" / "model.safetensors"))
    assert full.keys() == cut.keys()
    for k in full:
        assert torch.equal(full[k], cut[k]), k  # resume (streamed) is exact under DDP too

    # The same optimisation as the single-process run: step 1 (before any update) to float
    # precision, the rest closely. Not bit-for-bit, and not every weight: the biases feeding a
    # BatchNorm (and weights of near-constant inputs) have a (near-)zero gradient, and Adam turns
    # its float noise into steps of size ~lr, so such weights drift apart by ~1e-3 in a few steps.
    def records(run_dir):
        return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]

    single_m, ddp_m = records(tmp_path / "single"), records(root / "ddp_full")
    assert [r["step"] for r in ddp_m] == [r["step"] for r in single_m]  # rank 0 logs, once
    first = [(a, b) for a, b in zip(single_m, ddp_m, strict=True) if a["step"] == 1]
    assert first
    for a, b in first:
        for key in ("train/loss", "train/pred_loss", "train/sigreg", "train/grad_norm"):
            assert b[key] == pytest.approx(a[key], rel=1e-4), key
    for a, b in zip(single_m, ddp_m, strict=True):
        for key in ("train/loss", "train/pred_loss", "train/sigreg", "val/loss"):
            if key in a:
                assert b[key] == pytest.approx(a[key], rel=1e-3), (a["step"], key)


# -- bad input ----------------------------------------------------------------------------------


@pytest.fixture
def no_torchrun_env(monkeypatch):
    for name in TORCHRUN_ENV:
        monkeypatch.delenv(name, raising=False)


def test_distributed_without_torchrun_env_is_a_clear_error(
    tmp_path, toy_h5, tiny_config, no_torchrun_env
):
    with pytest.raises(DistributedError, match="RANK, WORLD_SIZE.*torchrun"):
        Trainer(tiny_config, toy_h5, tmp_path / "run", progress=False, distributed=True)
    assert not (tmp_path / "run").exists()


def test_cli_distributed_errors(tmp_path, toy_h5, capsys, monkeypatch, no_torchrun_env):
    from lewm.train import main as train_module_main

    args = ["--data", toy_h5, "--out", str(tmp_path / "run"), "--preset", "tiny"]
    assert train_module_main(args) == 2  # python -m lewm.train == lewm train --distributed
    assert "torchrun" in capsys.readouterr().err
    assert cli_main(["train", "--distributed", *args]) == 2
    monkeypatch.setenv("WORLD_SIZE", "2")  # a torchrun worker that forgot --distributed
    assert cli_main(["train", *args]) == 2
    assert "--distributed" in capsys.readouterr().err
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "not-a-port")
    with pytest.raises(DistributedError, match="MASTER_PORT"):
        dist_utils.init("cpu")
    monkeypatch.setenv("MASTER_PORT", "29500")
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(DistributedError, match="RANK=2, WORLD_SIZE=2"):
        dist_utils.init("cpu")
    assert not (tmp_path / "run").exists()


def test_batch_size_must_divide_by_world_size(tmp_path, toy_h5, tiny_config, monkeypatch):
    fake = DistInfo(rank=0, world_size=3, backend="gloo")  # no process group needed
    monkeypatch.setattr(dist_utils, "init", lambda device: fake)
    with pytest.raises(ConfigError, match=r"batch_size \(8\).*processes \(3\)"):
        Trainer(tiny_config, toy_h5, tmp_path / "run", progress=False, distributed=True)


def test_distributed_device_must_follow_local_rank():
    with pytest.raises(DistributedError, match="cuda:LOCAL_RANK"):
        dist_utils._device_for("cuda:1", 0)
    assert dist_utils._device_for("cpu", 1) == torch.device("cpu")


# -- single-process behaviour of the pieces ----------------------------------------------------


def test_global_batchnorm_without_process_group_is_batchnorm(tiny_config):
    torch.manual_seed(0)
    model = LeWM(tiny_config.model)
    ref = LeWM(tiny_config.model)
    ref.load_state_dict(model.state_dict())
    convert_batchnorm(model)
    kinds = {type(m) for m in model.modules()}
    assert GlobalBatchNorm in kinds and torch.nn.BatchNorm1d not in kinds
    assert model.state_dict().keys() == ref.state_dict().keys()
    pixels = torch.randint(0, 256, (4, 2, 16, 16, 3), dtype=torch.uint8)
    for m in (model, ref):
        m.train()
    assert torch.equal(model.encode(pixels), ref.encode(pixels))
    for a, b in zip(model.buffers(), ref.buffers(), strict=True):
        assert torch.equal(a, b)


def test_sigreg_distributed_flag_is_inert_without_process_group():
    z = torch.randn(2, 32, 8)
    assert torch.equal(SIGReg(16, seed=1, distributed=True)(z), SIGReg(16, seed=1)(z))
    sig = SIGReg(16, distributed=True)
    with sig.local():
        assert sig.distributed is False
    assert sig.distributed is True


@pytest.mark.slow
def test_torchrun_cli_end_to_end(tmp_path, toy_h5):
    """The documented command, through torchrun itself (slower: torchrun's own start-up)."""
    import subprocess

    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
        "--master-addr", "127.0.0.1", "--master-port", str(_free_port()),
        "-m", "lewm.train", "--data", toy_h5, "--out", str(tmp_path / "run"), "--preset", "tiny",
        "--no-progress", "train.steps=4", "train.device=cpu",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout)["steps"] == 4  # one summary, from rank 0
    assert LeWM.from_pretrained(tmp_path / "run").config.latent_dim == 16
