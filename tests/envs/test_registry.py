import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

import lewm.envs
from lewm.envs import ENVS, EnvSpec, get_spec, make_env, register


def _spec(**kw) -> EnvSpec:
    base = {
        "name": "toy",
        "id": "lewm/Toy-v0",
        "entry_point": "toy:ToyEnv",
        "max_episode_steps": 10,
        "collect": lambda out, episodes, **kw: {},
        "render": lambda states, resolution: np.zeros((len(states), resolution, resolution, 3)),
        "success": lambda s, g: np.zeros(np.shape(s)[:-1], bool),
    }
    return EnvSpec(**{**base, **kw})


def test_unknown_names_list_the_registered_ones():
    with pytest.raises(
        ValueError, match="unknown environment 'maze'; available: cube, pusht, reacher, tworoom"
    ):
        get_spec("maze")
    with pytest.raises(ValueError, match="unknown environment 'maze'; available:"):
        make_env("maze")


def test_register_refuses_a_taken_name_or_id():
    before = dict(ENVS)
    with pytest.raises(ValueError, match="'tworoom' is already registered"):
        register(replace(get_spec("tworoom"), id="lewm/Other-v0"))
    with pytest.raises(ValueError, match="'lewm/TwoRoom-v0' is already used by 'tworoom'"):
        register(_spec(id="lewm/TwoRoom-v0"))
    assert ENVS == before


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"name": "two room"}, "plain identifier"),
        ({"entry_point": "toy.ToyEnv"}, "module:Class"),
        ({"max_episode_steps": 0}, "max_episode_steps"),
        ({"render": None}, "render must be callable"),
        ({"collect_options": "noise_std"}, "collect_options"),
        ({"eval_defaults": "eval.exclude_solved=true"}, "eval_defaults must be a tuple"),
        ({"eval_defaults": ("train.steps=3",)}, "eval.KEY=VALUE overrides"),
        ({"data_attrs": ("look", 3)}, "data_attrs must be a tuple of strings"),
    ],
)
def test_spec_fields_are_validated(bad, match):
    with pytest.raises(ValueError, match=match):
        _spec(**bad)


def test_env_names_and_ids_follow_the_registry(monkeypatch):
    assert lewm.envs.ENV_NAMES == ("cube", "pusht", "reacher", "tworoom")
    assert lewm.envs.ENV_IDS == {
        "cube": "lewm/Cube-v0",
        "pusht": "lewm/PushT-v0",
        "reacher": "lewm/Reacher-v0",
        "tworoom": "lewm/TwoRoom-v0",
    }
    monkeypatch.setitem(ENVS, "toy", _spec())
    assert "toy" in lewm.envs.ENV_NAMES and lewm.envs.ENV_IDS["toy"] == "lewm/Toy-v0"
    assert _spec().install_hint == "" and get_spec("pusht").install_hint == (
        "pip install 'lewm[pusht]'"
    )


def test_importing_envs_is_cheap():
    code = (
        "import sys, lewm.envs; "
        "print(sorted(m for m in ('pymunk', 'cv2', 'torch', 'h5py') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
