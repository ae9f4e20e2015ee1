"""Helpers the tests share, not tests: a stand-in for Ray Tune's session (fake_tune), the
processes and ports of services a test starts (processes), conftest's tracked search
(tracked_search) and the small training configuration of the command tests (train_configs)."""
