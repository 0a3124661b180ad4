"""Against a real balance: set CAPA_HARDWARE_TESTS=1 and CAPA_SARTORIUS_PORT (+ _PROTOCOL).

These are the checks that the simulator cannot make: that a real balance answers the SBI
commands and, above all, that capa's xBPI telegram layout and command numbers match the
balance (Sartorius does not publish them). Read-only except for nothing: no tare, no zero.
"""

import os

import pytest

import capa
from capa_sartorius.adapter import SartoriusBalance
from capa_sartorius.params import BalanceParams

pytestmark = pytest.mark.hardware


@pytest.fixture
def params():
    port = os.environ.get("CAPA_SARTORIUS_PORT")
    if not port:
        pytest.skip("CAPA_SARTORIUS_PORT is not set")
    return BalanceParams(port=port, protocol=os.environ.get("CAPA_SARTORIUS_PROTOCOL", "sbi"))


def test_real_balance_identifies_itself(h, params):
    result = h.arun(SartoriusBalance.handshake, params)
    assert result.ok, result.detail
    assert result.identity["model"]


def test_real_balance_reads(h, params):
    adapter = SartoriusBalance("balance", params)
    h.arun(adapter.open)
    try:
        emissions = h.arun(adapter.read)
    finally:
        h.arun(adapter.close)
    batch = h.batch_of(emissions)
    assert batch.status["mass"][0] != capa.SampleStatus.COMM_ERROR.value
