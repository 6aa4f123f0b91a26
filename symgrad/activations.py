"""Built-in activations: the checked-in generated/activations.py, exposed as symgrad.activations."""

from symgrad.resources import load_generated as _load

_module = _load("activations", public=__name__)
__all__ = list(_module.__all__)
# every name, helpers included: the functions name this module (so they pickle), and
# inspect.getmodule(fn) must then hold what their bodies use
globals().update({_k: _v for _k, _v in vars(_module).items() if not _k.startswith("__")})
#: What each kernel is (role, inputs, hyper-parameters, domains, emitted functions).
KERNELS = _module.KERNELS
