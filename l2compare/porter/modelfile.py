"""Read a user's ``.keras`` (or legacy ``.h5``) file safely, for ``l2compare port`` and ``l2compare verify``.

Safe mode is always on: Keras then refuses to rebuild Python code stored in the file (a
``Lambda`` layer's function), so loading a file never runs code from it. Every failure is a
``PortError`` whose one-line message names the file and what is wrong with it: missing, not a
``.keras`` archive (a text file, a truncated download), or holding a class Keras does not know
here or the porter cannot carry (a custom layer, a ``Lambda``).

A legacy ``.h5``/``.hdf5`` file (``model.save("m.h5")``) is read the same way: Keras 3's loader
(``keras/src/legacy/saving/legacy_h5_format.py``) builds the model from the file's JSON
``model_config`` inside a safe-mode scope, so a ``Lambda``'s stored bytecode is refused, not
run, and only Keras's own (or this process's registered) classes are built. Refused, each with
its case named: a weights-only file (``save_weights``: no architecture), a file that is not HDF5
or is truncated, a ``Lambda``, and whatever Keras's loader refuses (an unknown custom layer).
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

from l2compare.porter.errors import PortError

# The archive members Keras writes (keras/src/saving/saving_lib.py).
_CONFIG, _WEIGHTS = "config.json", "model.weights.h5"
_H5_SUFFIXES, _H5_MAGIC = (".h5", ".hdf5"), b"\x89HDF\r\n\x1a\n"


def load(path):
    """The Keras model saved at ``path`` (a ``.keras`` file), uncompiled, loaded in safe mode."""
    path = Path(path)
    if path.suffix in _H5_SUFFIXES and path.is_file():
        check_h5(path)
    else:
        refuse_unknown_classes(path, read_config(path))
    import keras

    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # noqa: BLE001 - any failure of Keras's loader is the file's problem, in one line
        raise PortError(f"{path}: Keras cannot load this model ({_first_line(exc)})") from None


def read_config(path: Path) -> dict:
    """The model's ``config.json`` from the archive, after checking that the file is one."""
    if not path.exists():
        raise PortError(f"{path}: no such file")
    if path.is_dir():
        raise PortError(f"{path}: is a folder, not a .keras file")
    if path.suffix != ".keras":
        raise PortError(f"{path}: not a .keras (or legacy .h5) file; save the model with model.save('model.keras')")
    if not zipfile.is_zipfile(path):
        raise PortError(f"{path}: not a .keras file (not a zip archive: truncated, or another kind of file)")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if _CONFIG not in names or _WEIGHTS not in names:
                raise PortError(f"{path}: a zip archive, but not a Keras model (no {_CONFIG} and {_WEIGHTS})")
            if archive.testzip() is not None:
                raise PortError(f"{path}: corrupt .keras archive (a member fails its checksum)")
            config = json.loads(archive.read(_CONFIG))
    except PortError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise PortError(f"{path}: corrupt .keras archive ({_first_line(exc)})") from None
    if not isinstance(config, dict) or "class_name" not in config:
        raise PortError(f"{path}: corrupt .keras archive ({_CONFIG} does not describe a model)")
    return config


def check_h5(path: Path) -> None:
    """Refuse a legacy HDF5 file that is not a whole model Keras can build without running its code."""
    if path.name.endswith(".weights.h5"):
        raise PortError(f"{path}: a weights-only file (model.save_weights): it holds no architecture; build the "
                        "model in Python, load these weights into it and port that model")
    with open(path, "rb") as f:
        if f.read(8) != _H5_MAGIC:
            raise PortError(f"{path}: not an HDF5 file (the legacy HDF5 format starts with its signature)")
    import h5py

    try:
        with h5py.File(path, "r") as f:
            config = f.attrs.get("model_config")
    except (OSError, ValueError) as exc:
        raise PortError(f"{path}: corrupt or truncated file in the legacy HDF5 format ({_first_line(exc)})") from None
    if config is None:
        raise PortError(f"{path}: an HDF5 file without a model_config (weights only?): no architecture to port")
    try:
        config = json.loads(config.decode("utf-8") if hasattr(config, "decode") else config)
    except ValueError as exc:
        raise PortError(f"{path}: the legacy HDF5 file's model_config is not JSON ({_first_line(exc)})") from None
    for obj, _ in _objects(config, is_layer=False):
        if obj.get("class_name") == "Lambda":
            layer = (obj.get("config") or {}).get("name", "?")
            raise PortError(f"{path}: Lambda layer {layer!r} holds Python bytecode, which safe mode does not run; "
                            "a Lambda layer cannot be ported")


def refuse_unknown_classes(path: Path, config: dict) -> None:
    """Refuse a file that holds a class outside Keras (a custom layer, model, regularizer...) or a
    ``Lambda``: the porter carries neither, and a custom class's code is not in the file."""
    for obj, is_layer in _objects(config, is_layer=False):
        module, name = obj.get("module"), obj.get("class_name")
        if name == "Lambda" and module == "keras.layers":
            layer = (obj.get("config") or {}).get("name", "?")
            raise PortError(f"{path}: Lambda layer {layer!r} holds Python code, which safe mode does not run; "
                            "a Lambda layer cannot be ported")
        if name == "__keras_tensor__" or name == "__tensor__" or name == "__numpy__":
            continue
        if not (isinstance(module, str) and (module == "keras" or module.startswith("keras."))):
            if name == "function":  # a Python function of the user's (an activation, a loss...)
                raise PortError(f"{path}: unknown function {obj.get('config')!r}: only Keras's own functions are read")
            registered = obj.get("registered_name") or name
            if is_layer:
                raise PortError(f"{path}: unknown layer {name!r} ({registered}): a custom layer cannot be ported")
            raise PortError(f"{path}: unknown class {name!r} ({registered}): only Keras's own classes are read")


def _objects(node, is_layer: bool):
    """Every serialized object ({"class_name": ..., "config": ...}) in a config, and whether it
    sits where a layer goes (a model's ``layers`` list, or the model itself)."""
    if isinstance(node, dict):
        if "class_name" in node and "config" in node:
            yield node, is_layer
        for key, value in node.items():
            yield from _objects(value, is_layer=key == "layers")
    elif isinstance(node, list):
        for value in node:
            yield from _objects(value, is_layer=is_layer)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= 200 else line[:197] + "..."
