"""Built-in regularizers: the checked-in generated/regularizers.py, exposed as symgrad.regularizers."""

from symgrad.resources import load_generated as _load

_module = _load("regularizers")
__all__ = list(_module.__all__)
globals().update({_name: getattr(_module, _name) for _name in __all__})
#: What each kernel is (role, inputs, hyper-parameters, domains, emitted functions).
KERNELS = _module.KERNELS
