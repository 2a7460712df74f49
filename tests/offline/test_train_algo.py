"""``train_algo`` end to end on a generated dataset: offline, online fine-tuning, resume, metrics."""
from __future__ import annotations

import json

import pytest


def _cfg(tmp_path, files, name, params, offline=200, online=0, finetune=None, kind="medium-replay"):
    return {
        "seed": 0, "progress": False, "run_dir": str(tmp_path / name), "num_threads": 1,
        "algo": {"name": name, "offline_steps": offline, "online_steps": online, "eval_every": 100,
                 "eval_episodes": 2, "log_every": 50, "ckpt_every": 100, "params": params,
                 "finetune": finetune or {}},
        "dataset": {"name": f"hopper-{kind}-v5", "path": files[kind], "format": "d4rl", "env_id": "Hopper-v5",
                    "d4rl_name": f"hopper-{kind}-v5"},
        "eval": {"n_episodes": 3, "num_envs": 3, "seed": 1000},
        "train": {"tensorboard": False},
    }


def test_iql_offline_then_online_and_resume(tiny_hopper, tmp_path):
    from robotrl.engine.rl_trainer import train_algo

    _, summary = tiny_hopper
    cfg = _cfg(tmp_path, summary["files"], "iql", {"hidden_dims": [32, 32], "batch_size": 64}, offline=200,
               online=150, finetune={"utd": 1.0})
    out = train_algo(cfg)
    assert out["offline_steps"] == 200 and out["online"]["env_steps"] == 150 and out["online"]["updates"] == 150
    assert out["normalized_score"] is not None and out["n_episodes"] == 3
    run = tmp_path / "iql"
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert len(metrics["returns"]) == 3
    assert (run / "learning_curve.png").stat().st_size > 0
    rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("offline_eval/normalized_score" in r for r in rows)
    assert any("offline_train/grad_steps_per_s" in r for r in rows)
    # a second call resumes: nothing left offline, the online phase continues to a larger budget
    cfg["algo"]["online_steps"] = 200
    out2 = train_algo(cfg)
    assert out2["offline_grad_steps_per_s"] is None                 # offline phase was already complete
    assert out2["online"]["env_steps"] == 200 and out2["online"]["updates"] == 200


@pytest.mark.parametrize("name,params", [
    ("td3bc", {"hidden_dims": [32, 32], "batch_size": 64}),
    ("cql", {"hidden_dims": [32, 32], "batch_size": 64, "num_random": 2}),
    ("a2pr", {"actor_hidden_dims": [32, 32], "critic_hidden_dims": [32, 32], "value_hidden_dims": [32, 32],
              "vae_hidden_dims": [32, 32], "batch_size": 64}),
])
def test_other_offline_algorithms_run(tiny_hopper, tmp_path, name, params):
    from robotrl.engine.rl_trainer import train_algo

    _, summary = tiny_hopper
    out = train_algo(_cfg(tmp_path, summary["files"], name, params, offline=60))
    assert out["offline_steps"] == 60 and out["mean_return"] > 0


def test_arsq_offline_then_online_with_demos(tiny_hopper, tmp_path):
    from robotrl.engine.rl_trainer import train_algo

    _, summary = tiny_hopper
    params = {"hidden_dims": [32, 32], "batch_size": 64, "levels": 2, "bins": 3}
    out = train_algo(_cfg(tmp_path, summary["files"], "arsq", params, offline=60, online=80, kind="medium-expert"))
    assert out["online"]["env_steps"] == 80 and out["online"]["updates"] == 80


def test_wsrl_finetune_has_no_offline_data(tiny_hopper, tmp_path):
    from robotrl.engine.rl_trainer import train_algo

    _, summary = tiny_hopper
    cfg = _cfg(tmp_path, summary["files"], "iql", {"hidden_dims": [32, 32], "batch_size": 64}, offline=50, online=120,
               finetune={"warmup": "policy", "start_steps": 60, "offline_ratio": 0.0})
    out = train_algo(cfg)
    assert out["online"]["updates"] == 60                           # no updates during the warm-up rollouts
    online_cfg = json.loads((tmp_path / "iql" / "online_config.json").read_text())
    assert online_cfg["offline_ratio"] == 0.0 and online_cfg["warmup"] == "policy"


def test_unknown_keys_are_refused(tiny_hopper, tmp_path):
    from robotrl.engine.rl_trainer import train_algo

    _, summary = tiny_hopper
    with pytest.raises(ValueError, match="expectle.*did you mean 'expectile'"):
        train_algo(_cfg(tmp_path, summary["files"], "iql", {"expectle": 0.9}))


def test_a2pr_presets_follow_d4rl_names():
    from robotrl.offline.a2pr import A2PRConfig, a2pr_preset

    p = a2pr_preset("d4rl/halfcheetah-medium-replay-v2")
    assert p["alpha"] == 40.0 and p["reg_weight"] == 0.8
    assert a2pr_preset("hopper-medium-v5")["alpha"] == 2.5
    assert a2pr_preset("pen-human-v1") == {}
    A2PRConfig(**p)  # every preset key is a config field


def test_arsq_presets_and_union_split():
    from robotrl.offline.arsq import ARSQConfig, arsq_preset
    from robotrl.rl.trainer import union_split

    p = arsq_preset("d4rl/hopper-medium-replay-v2")
    assert (p["levels"], p["bins"], p["demo_loss"], p["demo_weight"]) == (2, 7, "margin", 0.03)
    ARSQConfig(**p)
    assert arsq_preset("antmaze-umaze-v2") == {}
    # the non-demo half of an ARSQ batch, uniform over dataset ∪ online data
    assert union_split(256, 100_000, 0) == 256
    assert union_split(256, 100_000, 100_000) == 128
    assert union_split(256, 30_000, 10_000) == 192
    assert union_split(0, 10, 10) == 0


def test_preset_fills_dataset_settings_but_keeps_the_users_values():
    from robotrl.engine.rl_trainer import apply_preset, explicit_param_overrides

    defaults = {"alpha": 2.5, "reg_weight": 1.0, "vae_weight": 1.0, "gamma": 0.99, "batch_size": 256}
    explicit = explicit_param_overrides(["algo=a2pr", "algo.params.alpha=2.5", "++algo.params.tau=0.01", "seed=1"])
    assert explicit == {"alpha", "tau"}
    # auto on halfcheetah-medium-replay: the public code's settings, except alpha (named on the command
    # line, though equal to the default) and batch_size (differs from the default: set in a file or dict)
    p, applied = apply_preset("a2pr", "auto", "halfcheetah-medium-replay-v5", {**defaults, "reg_weight": 3.0}, explicit)
    assert (p["alpha"], p["reg_weight"], p["vae_weight"], p["gamma"]) == (2.5, 3.0, 1.5, 0.995)
    assert applied == {"vae_weight": 1.5, "gamma": 0.995}  # only what changed
    p, applied = apply_preset("a2pr", "AUTO", "halfcheetah-medium-v5", defaults)
    assert applied == {"alpha": 40.0} and p["alpha"] == 40.0
    # a named preset instead of the dataset's; none / unknown dataset / algo without presets: nothing
    assert apply_preset("arsq", "hopper-medium-replay", "whatever", {})[0]["demo_loss"] == "margin"
    assert apply_preset("a2pr", "none", "halfcheetah-medium-v5", defaults)[1] == {}
    assert apply_preset("a2pr", "auto", "pen-human-v1", defaults)[1] == {}
    assert apply_preset("iql", "auto", "hopper-medium-v5", {})[1] == {}
    with pytest.raises(ValueError, match="no a2pr preset of that name"):
        apply_preset("a2pr", "hopper-mediun", "x", {})
    with pytest.raises(ValueError, match="has no per-dataset presets"):
        apply_preset("iql", "hopper-medium", "x", {})


def test_resume_with_other_params_is_refused(tiny_hopper, tmp_path):
    """A run started with one preset cannot silently continue with another (e.g. after a preset change)."""
    from robotrl.engine.rl_trainer import train_algo

    _, summary = tiny_hopper
    small = {"actor_hidden_dims": [16], "critic_hidden_dims": [16], "value_hidden_dims": [16],
             "vae_hidden_dims": [16], "batch_size": 32}
    cfg = _cfg(tmp_path, summary["files"], "a2pr", small, offline=20)
    cfg["algo"]["preset"] = "auto"  # hopper-medium-replay: reg 0.5, VAE 1.5
    train_algo(cfg)
    saved = json.loads((tmp_path / "a2pr" / "config.json").read_text())
    assert saved["preset_applied"] == {"reg_weight": 0.5, "vae_weight": 1.5}
    cfg["algo"]["preset"] = "none"
    cfg["algo"]["offline_steps"] = 40
    with pytest.raises(ValueError, match=r"reg_weight: 0.5 then, 1.0 now"):
        train_algo(cfg)


def test_cli_applies_a2pr_preset_from_the_dataset_name(tiny_hopper, tmp_path):
    """Through Hydra (conf/algo/a2pr.yaml has preset: auto): the recorded config carries the
    hopper-medium-replay preset's VAE weight 1.5 but the reg weight set on the command line."""
    import subprocess
    import sys
    from pathlib import Path

    _, summary = tiny_hopper
    run = tmp_path / "a2pr_cli"
    cmd = [sys.executable, "-m", "robotrl.cli.train", "algo=a2pr", "dataset=d4rl/hopper-medium-replay-v5",
           f"dataset.path={summary['files']['medium-replay']}", f"run_dir={run}", "algo.offline_steps=20",
           "algo.eval_every=0", "algo.eval_episodes=1", "eval.n_episodes=1", "eval.num_envs=1",
           "algo.params.reg_weight=1.0", "algo.params.actor_hidden_dims=[16]", "algo.params.critic_hidden_dims=[16]",
           "algo.params.value_hidden_dims=[16]", "algo.params.vae_hidden_dims=[16]", "algo.params.batch_size=32",
           "progress=false", "train.tensorboard=false", f"hydra.run.dir={tmp_path / 'hydra'}"]
    out = subprocess.run(cmd, cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "per-dataset settings for hopper-medium-replay-v5: vae_weight=1.5" in out.stdout
    saved = json.loads((run / "config.json").read_text())
    assert saved["algo"]["params"]["vae_weight"] == 1.5 and saved["algo"]["params"]["reg_weight"] == 1.0
    assert saved["preset_applied"] == {"vae_weight": 1.5}


@pytest.mark.parametrize("name", ["iql", "td3bc", "cql", "a2pr", "arsq"])
def test_algo_yaml_params_are_the_dataclass_fields(name):
    """conf/algo/<name>.yaml lists every params key as a field of the algorithm's config (a renamed field
    must not leave the Hydra default behind), and the defaults build."""
    import dataclasses
    from pathlib import Path

    import yaml

    from robotrl.engine.rl_trainer import _registry, make_algorithm

    conf = Path(__file__).resolve().parents[2] / "conf" / "algo" / f"{name}.yaml"
    params = yaml.safe_load(conf.read_text())["params"]
    fields = {f.name for f in dataclasses.fields(_registry()[name][1])}
    assert set(params) <= fields, set(params) - fields
    make_algorithm(name, 11, 3, {k: v for k, v in params.items() if v is not None})


def test_resume_check_accepts_a_parameter_added_since_at_its_default():
    """A checkpoint written before a parameter existed (e.g. A2PR's vae_target) resumes while the
    parameter keeps its default; set to another value it is refused."""
    from pathlib import Path

    from robotrl.engine.rl_trainer import _check_resumed_params

    saved = {"reg_weight": 0.5}
    defaults = {"reg_weight": 1.0, "vae_target": "recon"}
    _check_resumed_params(Path("ckpt.pt"), saved, {"reg_weight": 0.5, "vae_target": "recon"}, defaults)
    with pytest.raises(ValueError, match=r"vae_target: None then, 'prior' now"):
        _check_resumed_params(Path("ckpt.pt"), saved, {"reg_weight": 0.5, "vae_target": "prior"}, defaults)
    with pytest.raises(ValueError, match=r"reg_weight: 0.5 then, 1.0 now"):
        _check_resumed_params(Path("ckpt.pt"), saved, {"reg_weight": 1.0, "vae_target": "recon"}, defaults)
