"""The model registry: every architecture of every pipeline, creatable by name.

    @register("spase_net")
    class SpAsENet(nn.Module): ...

    model = create("spase_net", n_time=1000)
    available()  # -> sorted names of all registered models

Each pipeline is a subpackage (``models/wavefield``, ...) whose import registers its models.
:func:`create` and :func:`available` import every subpackage first, so a name registered by any
pipeline is found from any code without importing that pipeline by hand.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable

from torch import nn

from crackscope.errors import InputError

__all__ = ["register", "create", "available", "get"]

_REGISTRY: dict[str, type[nn.Module]] = {}
_IMPORT_ERRORS: dict[str, BaseException] = {}
_discovered = False


def register(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: make the model creatable as ``create(name, **kw)``."""

    def decorator(cls: type[nn.Module]) -> type[nn.Module]:
        known = _REGISTRY.get(name)
        if known is not None and (known.__module__, known.__qualname__) != (cls.__module__, cls.__qualname__):
            raise ValueError(f"model name {name!r} is already registered by {known.__module__}.{known.__qualname__}")
        _REGISTRY[name] = cls
        cls.model_name = name
        return cls

    return decorator


def _discover() -> None:
    """Import every pipeline subpackage once, so their ``@register`` decorators run."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    for info in pkgutil.iter_modules(__path__):
        module = f"{__name__}.{info.name}"
        try:
            importlib.import_module(module)
        except Exception as err:  # kept for the error of a name that is then missing
            _IMPORT_ERRORS[module] = err


def available() -> list[str]:
    """Sorted names of all registered models."""
    _discover()
    return sorted(_REGISTRY)


def get(name: str) -> type[nn.Module]:
    """The model class registered as ``name``; InputError naming it and the choices if unknown."""
    _discover()
    if name not in _REGISTRY:
        if _IMPORT_ERRORS:
            module, err = next(iter(_IMPORT_ERRORS.items()))
            raise ImportError(f"model {name!r} not found and {module} failed to import: {err}") from err
        raise InputError(f"unknown model {name!r}; choose one of: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def create(name: str, **kwargs) -> nn.Module:
    """A new model ``name`` built with ``kwargs``; InputError for an unknown name or keyword."""
    cls = get(name)
    try:
        inspect.signature(cls).bind(**kwargs)
    except TypeError as err:
        accepted = [p for p in inspect.signature(cls).parameters if p not in ("args", "kwargs")]
        raise InputError(f"model {name!r}: {err}; accepted options: {', '.join(accepted)}") from None
    return cls(**kwargs)
