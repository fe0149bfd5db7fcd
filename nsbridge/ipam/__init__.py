"""Address management: pure logic, no I/O (the engine passes in what is taken)."""
