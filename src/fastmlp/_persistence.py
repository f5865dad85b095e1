"""Model files: an ``.npz`` with the constructor arguments (JSON), parameters and history."""

import json

import numpy as np


def save(model, path):
    """Write `model`'s configuration, parameters and history to `path`."""
    np.savez(
        path,
        config=np.array(json.dumps(model.get_config())),
        params=model.params_,
        history_loss=np.asarray(model.history_["loss"], dtype=np.float64),
        history_val_loss=np.asarray(model.history_["val_loss"], dtype=np.float64),
    )


def load(cls, path, backend="auto"):
    """A `cls` (``MLP``) rebuilt from a file written by `save`."""
    with np.load(path, allow_pickle=False) as data:
        try:
            config = json.loads(str(data["config"]))
            params = data["params"]
            history = {"loss": data["history_loss"].tolist(), "val_loss": data["history_val_loss"].tolist()}
        except KeyError as exc:
            raise ValueError(f"{path!s} is not a fastmlp model file (missing {exc})") from None
    model = cls(**config, backend=backend)
    if params.shape != model.params_.shape or params.dtype != model.dtype:
        raise ValueError(f"{path!s}: parameters of shape {params.shape} and dtype {params.dtype} do not fit {model!r}")
    model._set_state(np.ascontiguousarray(params), history)
    return model
