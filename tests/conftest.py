"""Shared pytest configuration: the lab fixtures are available to every test."""

pytest_plugins = ["lab.pytest_plugin"]
