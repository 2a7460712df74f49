"""Fixtures of the offline-RL tests (the chain MDP lives in ``offline_chain_mdp.py``)."""
import pytest

from offline_chain_mdp import behaviour_store


@pytest.fixture(scope="session")
def chain_store():
    return behaviour_store()


@pytest.fixture(scope="session")
def tiny_hopper(tmp_path_factory):
    """All five D4RL-style Hopper datasets from a tiny SAC run (seconds, not a real expert)."""
    from robotrl.offline.datasets import D4RLGenConfig, generate_d4rl_datasets

    out = tmp_path_factory.mktemp("d4rl")
    cfg = D4RLGenConfig(env_id="Hopper-v5", out_dir=str(out), sac_steps=1200, start_steps=400, snapshot_every=400,
                        snapshot_eval_episodes=1, dataset_size=800, hidden_dims=(32, 32), batch_size=64,
                        max_episode_steps=200, progress=False, seed=3)
    return cfg, generate_d4rl_datasets(cfg)
