"""Against a real balance: set CAPA_HARDWARE_TESTS=1 and CAPA_SARTORIUS_PORT (+ _PROTOCOL).

These are the checks that neither the simulator nor the oracle tests can make: that a real
balance on this machine answers capa's SBI commands and xBPI frames (the xBPI layout is
checked against captures from other balances in ``oracles/sartorius``). Read-only: no
tare, no zero.
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
