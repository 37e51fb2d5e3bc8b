"""Real servers for the tests and benchmarks: MariaDB and ROAR itself, on loopback."""
