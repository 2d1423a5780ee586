"""Real servers started for the lab: PostgreSQL, Prometheus, Alertmanager and a webhook receiver.

Each module defines one ``lab.services.Service``; ``python -m lab up`` starts them on
127.0.0.1 with their data under ``<lab dir>/data/<name>`` and stops them by PID.
"""
