"""The local lab: a Kubernetes API emulator, simulated controllers and real servers.

See lab/README.md. Start it with ``python -m lab up``; stop it with ``python -m lab down``.
"""
