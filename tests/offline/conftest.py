"""Fixtures of the offline-RL tests (the chain MDP lives in ``offline_chain_mdp.py``)."""
import pytest

from offline_chain_mdp import behaviour_store


@pytest.fixture(scope="session")
def chain_store():
    return behaviour_store()
