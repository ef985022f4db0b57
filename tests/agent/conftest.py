import pytest

from apps.agent.agent import TeepAgent
from apps.teep.wire.numbering import CURRENT, PRE_26

from .fake_tam import FakeTam


@pytest.fixture(params=[CURRENT, PRE_26], ids=lambda n: n.name)
def numbering(request):
    return request.param


@pytest.fixture
def tam(numbering):
    return FakeTam(numbering=numbering)


@pytest.fixture
def make_agent(tmp_path, tam):
    """An agent trusting the fake TAM's keys, in its own state folder."""
    counter = iter(range(1000))

    def make(**kwargs):
        kwargs.setdefault("numbering", tam.numbering)
        agent = TeepAgent(tmp_path / f"agent-{next(counter)}", **kwargs)
        for key in tam.public_keys:
            agent.add_tam_key(key.public_pem())
        return agent

    return make


@pytest.fixture
def agent(make_agent):
    return make_agent()
