"""Issue 5, acceptance 2: the paper preset (224 px ViT-tiny, 18M params) on Push-T builds,
trains a few steps and plans one episode, through the same code as the CPU preset."""

import json

import pytest

pytest.importorskip("pymunk")


@pytest.mark.slow
def test_paper_preset_collects_trains_and_plans_one_pusht_episode(tmp_path):
    from lewm.config import apply_overrides, preset
    from lewm.envs.pusht import collect_pusht
    from lewm.models import LeWM
    from lewm.planning import CEMConfig
    from lewm.planning.evaluate import EvalConfig, evaluate
    from lewm.training.trainer import train

    data = tmp_path / "pusht224.h5"
    collect_pusht(data, 3, resolution=224, max_steps=40, progress=False)
    cfg = apply_overrides(
        preset("paper"),
        ["train.steps=2", "train.batch_size=2", "train.val_every=0", "train.val_fraction=0.34"],
    )
    res = train(cfg, data, tmp_path / "run", progress=False)
    assert res.steps == 2
    model = LeWM.from_pretrained(res.model_dir)
    assert sum(p.numel() for p in model.parameters()) == 18_034_478
    ecfg = EvalConfig(
        episodes=1, goal_offset=10, budget=10, horizon=2, receding=2, split="all", num_gifs=1,
        solver=CEMConfig(num_samples=6, num_elites=2, iterations=2),
    )  # fmt: skip
    out = evaluate(model, "pusht", data, ecfg, out_dir=tmp_path / "eval")
    assert len(out.successes) == 1 and out.plans >= 1
    rec = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert len(rec["successes"]) == 1 and rec["settings"]["solver"]["num_samples"] == 6
