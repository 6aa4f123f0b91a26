"""Built-in losses: the checked-in generated/losses.py, exposed as symgrad.losses."""

from symgrad.resources import load_generated as _load

_module = _load("losses", public=__name__)
__all__ = list(_module.__all__)
# every name, helpers included: the functions name this module (so they pickle), and
# inspect.getmodule(fn) must then hold what their bodies use
globals().update({_k: _v for _k, _v in vars(_module).items() if not _k.startswith("__")})
#: What each kernel is (role, inputs, hyper-parameters, domains, emitted functions).
KERNELS = _module.KERNELS
