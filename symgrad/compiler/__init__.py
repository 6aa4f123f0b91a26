"""The compiler: sympy specs in, deterministic numpy source out. Needs sympy and jinja2.

The stages, in the order data flows through them (each imports only earlier ones):

* ``spec``      what a kernel is: name, role, inputs, hyper-parameters, expression
* ``primitives`` the symbolic building blocks specs are written with (axis sums, softmax, xlogy)
* ``derive``    d/dx, second derivatives, VJPs and HVPs of the plain form
* ``rewrite``   named stabilizing rules (with ``tails``, ``traverse``), applied to derived forms
* ``kernel``    one spec's derived, stabilized expressions
* ``printer``   / ``inplace`` / ``special``: how each sympy construct is spelled in numpy
* ``lower``     CSE and the emitted functions' plans
* ``render``    jinja2 templates to source text
* ``codegen``   the module source for a file, or for ``symgrad.compile``'s live module

The numpy run-time (``symgrad.losses``, ``symgrad.models``, ``symgrad.optim`` …) reaches this
package through one function only, ``symgrad.compiled.compile``; nothing here imports the
run-time (tests/runtime/test_runtime_imports.py).
"""
