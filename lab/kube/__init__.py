"""The lab's real Kubernetes control plane: built from its Go modules (build.py), started by service.py."""
