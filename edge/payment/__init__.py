"""Card-only roadside payment of a protocol's reduced fine: ports, ZVT adapter, the attempt's states and journal,
the workflow and its events, recording a payment, and recovery and settlement of attempts in doubt."""
