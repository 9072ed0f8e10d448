"""Card-only roadside payment of a protocol's reduced fine: ports, ZVT adapter, workflow and crash recovery."""
