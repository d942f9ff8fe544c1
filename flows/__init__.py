"""Prefect flows: the training pipeline (training.py), the drift check (drift.py), their deployments (serve.py)."""
