"""``verify --torch FILE.py:CLASS``: the user's own torch port, loaded and given the Keras model's weights.

``load_user_class`` imports the file in this process and checks the class (an ``nn.Module`` built with no
arguments). ``match_weights`` pairs each Keras weight (``model.weights`` order) with a tensor of the user's
state dict, by order and shape, or as ``--map`` says. The layouts are the porter's own moves: each Keras
weight is read through the generated port's state dict (Dense (in, out) -> (out, in), Conv2D HWIO -> OIHW,
depthwise -> grouped, BatchNormalization gamma/beta/moving_mean/moving_variance -> weight/bias/running_mean/
running_var), so a key of the generated port stands for a Keras weight in torch's layout. torch's
``num_batches_tracked`` has no Keras counterpart and is left alone.
"""
from __future__ import annotations

import importlib.util
import inspect
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from l2compare.porter.verify.data import VerifyError, moved_keys

SHOWN = 10   # unmatched tensors listed one per line; past this, "… and N more"
_SKIPPED = ("num_batches_tracked",)


class UserPortError(VerifyError):
    """The user's file, class or tensors cannot be used (a usage error: exit 2, one line or a short list)."""


def _last_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text.splitlines()[-1] if text else type(exc).__name__


def load_user_class(spec: str):
    """``FILE.py:CLASS`` -> the class (checked: an nn.Module subclass whose constructor needs no argument)."""
    from torch import nn

    path_text, _, name = spec.rpartition(":")
    if not path_text or not name:
        raise UserPortError(f"--torch {spec!r}: expected FILE.py:CLASS")
    path = Path(path_text)
    if not path.is_file():
        raise UserPortError(f"--torch {path}: no such file")
    module_name = f"l2compare_user_port_{abs(hash(str(path.resolve())))}"
    loader = importlib.util.spec_from_file_location(module_name, path)
    if loader is None or loader.loader is None:
        raise UserPortError(f"--torch {path}: not a Python file")
    module = importlib.util.module_from_spec(loader)
    sys.modules[module_name] = module   # dataclasses and pickling look their module up here
    try:
        loader.loader.exec_module(module)
    except BaseException as exc:  # noqa: BLE001 - the user's code, any error: its last line
        sys.modules.pop(module_name, None)
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise UserPortError(f"--torch {path}: importing it failed: {_last_line(exc)}") from None
    cls = getattr(module, name, None)
    if cls is None:
        raise UserPortError(f"--torch {path}: no class {name!r} in it")
    if not (inspect.isclass(cls) and issubclass(cls, nn.Module)):
        raise UserPortError(f"--torch {path}:{name} is not a torch.nn.Module subclass ({type(cls).__name__})")
    try:
        required = [p.name for p in inspect.signature(cls).parameters.values()
                    if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    except (TypeError, ValueError):
        required = []
    if required:
        raise UserPortError(f"--torch {path}:{name} needs constructor arguments ({', '.join(required)}); verify "
                            "builds it with none: give them defaults")
    return cls


def build_user(cls, dtype):
    """An instance of the user's class in ``dtype``; an error in its constructor is the user's, in one line."""
    import torch

    try:
        return cls().to(getattr(torch, dtype))
    except Exception as exc:  # noqa: BLE001 - the user's code
        raise UserPortError(f"--torch {cls.__name__}(): {_last_line(exc)}") from None


@dataclass
class Match:
    """Keras weights paired with the user's tensors: {port key: user key}, and what found no partner."""

    pairs: dict[str, str]
    keras_names: dict[str, str]            # port key -> Keras's name for the weight ("conv1/kernel")
    unmatched_keras: list[tuple[str, tuple]] = field(default_factory=list)
    unmatched_user: list[tuple[str, tuple]] = field(default_factory=list)
    shapes: dict[str, tuple] = field(default_factory=dict)   # port key -> shape (torch layout)

    def problems(self) -> list[str]:
        lines = [f"Keras {name} {shape}: no tensor of your port" for name, shape in self.unmatched_keras]
        lines += [f"your {key} {shape}: no Keras weight" for key, shape in self.unmatched_user]
        if len(lines) > SHOWN:
            lines = lines[:SHOWN] + [f"… and {len(lines) - SHOWN} more"]
        return lines


def keras_weights(side) -> list[tuple[str, str, tuple]]:
    """[(Keras name, port key, shape in torch layout)] in ``model.weights`` order (one side's copy)."""
    state = side.port.state()
    prefix = side.clone.name + "/"
    out = []
    for variable in side.clone.weights:
        keys = sorted(moved_keys(side.port, [variable]))
        if len(keys) != 1:   # not one tensor (a weight the port folds into another): matched by the port itself
            continue
        name = variable.path[len(prefix):] if variable.path.startswith(prefix) else variable.path
        out.append((name, keys[0], tuple(np.shape(state[keys[0]]))))
    return out


def match_weights(side, user_model, mapping: dict | None = None) -> Match:
    """Pair the Keras weights with the user's state dict: ``mapping`` ({Keras name: user key}) first, then the
    rest in order, each Keras weight with the next unpaired user tensor of the same shape (torch layout)."""
    entries = keras_weights(side)
    user = [(k, tuple(v.shape)) for k, v in user_model.state_dict().items() if k.rsplit(".", 1)[-1] not in _SKIPPED]
    user_shape = dict(user)
    full_names = {name: name for name, _, _ in entries}
    full_names.update({f"{side.clone.name}/{name}": name for name, _, _ in entries})
    pairs, used, bad = {}, set(), []
    by_name = {name: (key, shape) for name, key, shape in entries}
    for keras_name, user_key in (mapping or {}).items():
        name = full_names.get(keras_name)
        if name is None:
            raise UserPortError(f"--map: {keras_name!r} is not a weight of the Keras model (e.g. {entries[0][0]!r})"
                                if entries else f"--map: the Keras model has no weights ({keras_name!r})")
        if user_key not in user_shape:
            raise UserPortError(f"--map: {user_key!r} is not in your port's state dict")
        key, shape = by_name[name]
        if user_shape[user_key] != shape:
            bad.append(f"--map {name} -> {user_key}: shape {user_shape[user_key]}, Keras's in torch layout {shape}")
        pairs[key] = user_key
        used.add(user_key)
    if bad:
        raise UserPortError("\n".join(bad))
    at = 0
    unmatched_keras = []
    for name, key, shape in entries:
        if key in pairs:
            continue
        free = [i for i in range(at, len(user)) if user[i][0] not in used and user[i][1] == shape]
        if not free:
            unmatched_keras.append((name, shape))
            continue
        pairs[key] = user[free[0]][0]
        used.add(user[free[0]][0])
        at = free[0] + 1
    unmatched_user = [(k, s) for k, s in user if k not in used]
    return Match(pairs, {key: name for name, key, _ in entries}, unmatched_keras, unmatched_user,
                 {key: shape for _, key, shape in entries})


def load_matched(user_model, match: Match, flat: dict) -> None:
    """Set the user's matched tensors to ``flat``'s values (port keys, torch layout), in the model's dtype."""
    import torch

    state = user_model.state_dict()
    with torch.no_grad():
        for key, user_key in match.pairs.items():
            if key not in flat:   # an integer buffer: verify's flat states carry floats only
                continue
            state[user_key].copy_(torch.as_tensor(np.ascontiguousarray(flat[key]), dtype=state[user_key].dtype))


def read_matched(user_model, match: Match) -> dict[str, np.ndarray]:
    """The user's matched tensors, by port key."""
    state = user_model.state_dict()
    return {key: state[user_key].detach().numpy().copy() for key, user_key in match.pairs.items()}
