"""Training scheduling agents for ``llmsched/Serve-v1``: CLI, PyTorch set policies, behaviour cloning.

* ``llmsched-train`` / ``python -m train`` (:mod:`train.cli`): PPO (``rank`` mode) or sb3-contrib's
  MaskablePPO (``admit`` mode) from a YAML config (:mod:`train.config`), on the GPU when present,
  with TensorBoard curves of the agent against the baselines (:mod:`train.callbacks`).
* :mod:`train.networks`: the permutation-equivariant set-encoder policies (saved models need it).
* :mod:`train.bc`: warm start by behaviour cloning from a heuristic.
* :mod:`train.agents`: :func:`~train.agents.load_policy` (a saved model as an ``llmsched-eval``
  policy) and :func:`~train.agents.policy_action` (a heuristic acting through the env).
"""
