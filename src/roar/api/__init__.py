"""HTTP: the modern API, the legacy /roar/api contract and the operations endpoints."""
