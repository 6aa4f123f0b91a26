"""Built-in losses: the checked-in generated/losses.py, exposed as symgrad.losses."""

from symgrad.resources import load_generated as _load

_module = _load("losses")
__all__ = list(_module.__all__)
globals().update({_name: getattr(_module, _name) for _name in __all__})
#: What each kernel is (role, inputs, hyper-parameters, domains, emitted functions).
KERNELS = _module.KERNELS
