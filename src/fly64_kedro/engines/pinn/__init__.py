"""PtychoPINN engine (docs/science.md "Reconstruction").

``stitching`` is pure numpy and importable anywhere. ``physics``, ``model`` and ``training`` import TensorFlow:
run them only inside the "tensorflow" worker, e.g.
``run_in_worker("tensorflow", "fly64_kedro.engines.pinn.training:train", ...)``.
"""
