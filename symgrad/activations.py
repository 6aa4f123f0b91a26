"""Built-in activations: the checked-in generated/activations.py, exposed as symgrad.activations."""

from symgrad.resources import load_generated as _load

_module = _load("activations")
__all__ = list(_module.__all__)
globals().update({_name: getattr(_module, _name) for _name in __all__})
#: What each kernel is (role, inputs, hyper-parameters, domains, emitted functions).
KERNELS = _module.KERNELS
