"""Pipeline stages: each module is one plain function plus the thin CLI that dvc.yaml calls."""
