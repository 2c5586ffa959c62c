"""The optimizer a saved model was compiled with, for ``l2compare verify``.

A ``.keras`` file saved after ``model.compile`` carries the optimizer in its ``config.json``
(``compile_config``). verify trains one of four optimizers at fixed settings (Keras's defaults,
``l2compare.porter.verify.keras_side.HYPERPARAMETERS``), so without ``--optimizer`` it trains the one the
file names, and says in one note where the file's settings differ from the ones it trains: a user reading
"adam" beside a model compiled with SGD would otherwise take the verdict for their own training. Reads the
archive's JSON only; no framework is imported here.
"""
from __future__ import annotations

import math

# Keras's class name -> verify's optimizer (SGD: "momentum" when its momentum is not 0)
_BY_CLASS = {"Adam": "adam", "AdamW": "adamw", "SGD": "sgd"}
# a model compiled with a name ("adam") gets that class at Keras's defaults
_BY_NAME = {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD"}
# settings verify's optimizers do not carry: set in the file (not None or False), they make it an optimizer verify
# does not train
_UNSUPPORTED = ("clipnorm", "global_clipnorm", "clipvalue", "use_ema", "loss_scale_factor",
                "gradient_accumulation_steps", "amsgrad", "nesterov")
# torch.optim's name -> Keras's, for the hyperparameters both sides have with the same meaning (weight decay is not
# one: coupled in torch's Adam and SGD, decoupled in Keras's and in AdamW, the mistakes verify's diagnosis names)
_SAME_MEANING = {"lr": "learning_rate", "momentum": "momentum", "eps": "epsilon"}


def compiled_optimizer(config: dict) -> tuple[str | None, dict]:
    """(Keras class name, its config) of the optimizer in a ``config.json``; (None, {}) for a model saved
    uncompiled. A model compiled with a name gives that class with an empty config (Keras's defaults)."""
    optimizer = (config.get("compile_config") or {}).get("optimizer")
    if optimizer is None:
        return None, {}
    if isinstance(optimizer, str):
        return _BY_NAME.get(optimizer.lower(), optimizer), {}
    return optimizer.get("class_name"), dict(optimizer.get("config") or {})


def choose(config: dict, asked: str | None, settings: dict[str, dict],
           default: str = "adam") -> tuple[str, str | None]:
    """(the optimizer verify trains, a one-line note or None).

    ``asked``: ``--optimizer`` (None when not given); ``settings``: verify's optimizer name -> the
    hyperparameters it trains with."""
    cls, own = compiled_optimizer(config)
    if cls is None:
        return asked or default, None
    unsupported = [k for k in _UNSUPPORTED if own.get(k) not in (None, False)]
    name = _BY_CLASS.get(cls)
    if name == "sgd" and _number(own.get("momentum", 0.0)) not in (0.0, None):
        name = "momentum"
    schedule = not isinstance(own.get("learning_rate", 0.0), (int, float))
    compiled = _call(cls, own)
    if name is None or unsupported or schedule:
        why = ("a learning-rate schedule" if schedule else
               f"{', '.join(unsupported)} set" if unsupported and name else "a class verify does not train")
        chosen = asked or default
        return chosen, (f"compiled with {compiled} ({why}); verify trains {chosen} at "
                        f"{_settings(settings[chosen])}" + ("" if asked else " (its default; see --optimizer)"))
    chosen = asked or name
    if chosen != name:
        return chosen, f"compiled with {compiled}; verify trains {chosen}, as --optimizer asks"
    differ = [k for k, v in settings[chosen].items() if not _same(own.get(k, v), v)]
    if own.get("weight_decay") not in (None, 0.0) and "weight_decay" not in settings[chosen]:
        differ.append("weight_decay")
    if not differ:
        return chosen, None
    return chosen, f"compiled with {compiled}; verify trains {chosen} at {_settings(settings[chosen])}"


def torch_note(torch_values: dict, keras_name: str, settings: dict[str, dict]) -> str | None:
    """For ``verify --torch``: a note when a torch optimizer's values (its keywords over its class's defaults) give
    another learning rate, momentum, β or ε than Keras's side (``settings[keras_name]``). A right port then reads
    wrong and the diagnosis finds no known mistake, so the note names the values. None when they agree (as Keras
    stores them, through float32)."""
    keras = {"momentum": 0.0, **settings[keras_name]}
    pairs = [(t, (torch_values[t],), k, (keras[k],)) for t, k in _SAME_MEANING.items()
             if t in torch_values and k in keras]
    if "betas" in torch_values and "beta_1" in keras:
        pairs.append(("betas", tuple(torch_values["betas"]), "beta_1, beta_2", (keras["beta_1"], keras["beta_2"])))
    differ = [f"{t}={_shorts(mine)} (Keras: {k}={_shorts(theirs)})" for t, mine, k, theirs in pairs
              if not all(map(_same, mine, theirs))]
    if not differ:
        return None
    return f"your torch optimizer differs from Keras's {keras_name} in {', '.join(differ)}: not the same training"


def _number(value):
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _same(a, b) -> bool:
    """Equal as Keras stores them: a hyperparameter is a float32 variable, so 0.05 and 0.05000000074505806 agree."""
    a, b = _number(a), _number(b)
    if a is None or b is None:
        return a is b
    import numpy as np

    return bool(np.float32(a) == np.float32(b)) or math.isclose(a, b, rel_tol=1e-7)


def _short(value) -> str:
    """A float32-stored hyperparameter as typed (0.05, not 0.05000000074505806); a schedule by its class."""
    number = _number(value)
    if number is not None:
        return f"{float(f'{number:.7g}'):g}"
    return str(value.get("class_name", "schedule")) if isinstance(value, dict) else repr(value)


def _call(cls: str, own: dict) -> str:
    """``SGD(learning_rate=0.05, momentum=0.8)``: the class and its settings that are not Keras's "off" values."""
    shown = [f"{k}={_short(v)}" for k, v in own.items()
             if k != "name" and v not in (None, False) and not (k == "ema_momentum" and not own.get("use_ema"))
             and not (k == "momentum" and cls == "SGD" and _number(v) == 0.0)]
    return f"{cls}({', '.join(shown)})"


def _shorts(values) -> str:
    return ", ".join(map(_short, values))


def _settings(values: dict) -> str:
    return ", ".join(f"{k}={_short(v)}" for k, v in values.items())
