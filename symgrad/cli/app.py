"""The symgrad command line: parses arguments and wires them to the modules that do the work."""

from __future__ import annotations

import argparse
import math
import os
import sys
import warnings

from symgrad import _interrupt
from symgrad.cli.report import EXIT_OK, EXIT_USAGE, Report, error, say
from symgrad.errors import InternalError, SymgradError

EXIT_CODES = """\
exit codes:
  0    success (nothing to do, or done)
  1    --check found stale or orphaned files; verify found a wrong derivative;
       train diverged
  2    bad usage, a bad target or spec, bad data, or an unwritable output
  123  internal error (a bug in symgrad: please report it)
  130  interrupted (Ctrl-C)
"""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one ``error:`` line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        say(f"error: {self.prog}: {message} (see {self.prog} --help)")
        raise SystemExit(EXIT_USAGE)


def tolerance(text: str) -> float:
    """Parse a tolerance: a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number >= 0")
    return value


def seed(text: str) -> int:
    """Parse a random seed: an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 0")
    return value


def echo(text: str) -> None:
    """Write ``text`` to stdout; a closed pipe (``| head``) silently ends the output."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def _generate(args: argparse.Namespace) -> int:
    from symgrad.cli import config, generate

    write = not (args.check or args.diff)
    report = Report(check=args.check, write=write, quiet=args.quiet, verbose=args.verbose)
    try:
        chosen = config.resolve(
            args.targets, args.output, args.backend, writing=write, choices=tuple(generate.SUFFIXES)
        )
        plan = generate.plan(
            chosen.targets,
            chosen.output,
            writing=write,
            safe=not args.fast,
            lowerings=chosen.backends,
        )
    except InternalError:
        raise
    except SymgradError as exc:
        return error(str(exc))
    generate.apply(plan, report, write=write, diff=args.diff, prune=args.prune, echo=echo)
    return report.finish()


def _list(args: argparse.Namespace) -> int:
    from symgrad.cli.catalog import entries, format_list
    from symgrad.cli.targets import load_targets

    try:
        targets = load_targets(args.targets)
    except SymgradError as exc:
        return error(str(exc))
    echo(format_list(entries(targets)))
    return EXIT_OK


def _show(args: argparse.Namespace) -> int:
    from symgrad.cli import catalog
    from symgrad.cli.targets import load_targets

    try:
        entry = catalog.find(args.name, load_targets(args.target or []))
        if args.code:
            text = catalog.code(entry)
        elif args.latex:
            text = catalog.describe_latex(entry)
        else:
            text = catalog.describe(entry)
    except SymgradError as exc:
        return error(str(exc))
    echo(text)
    return EXIT_OK


def _verify(args: argparse.Namespace) -> int:
    from symgrad.cli.targets import load_targets
    from symgrad.compiled import compile as compile_specs
    from symgrad.testing import format_table, verify_module

    try:
        targets = load_targets(args.targets)
        modules = [(t, compile_specs(*t.specs)) for t in targets]
    except SymgradError as exc:
        return error(str(exc))
    results = []
    for target, module in modules:
        results += verify_module(
            target.specs,
            module,
            prefix=f"{target.stem}.",
            seed=args.seed,
            rtol=args.rtol,
            atol=args.atol,
        )
    echo(format_table(results, rtol=args.rtol))
    for result in results:
        for line in result.notes():
            say(f"note {line}")
    report = Report()
    failed = [r for r in results if not r.ok]
    for result in failed:
        for line in result.problems():
            report.check_failed(line)
    say(f"{len(results)} kernel{'s' * (len(results) != 1)} checked, {len(failed)} failed")
    return report.return_code


def _train(args: argparse.Namespace) -> int:
    if args.scheduler:
        from symgrad.cli.train_dask import run as run_on_cluster

        return run_on_cluster(args)
    from symgrad.cli.train import run

    return run(args)


def _predict(args: argparse.Namespace) -> int:
    from symgrad.cli.predict import run

    return run(args)


def _command(sub, name: str, help: str, description: str, examples: list[str]):
    parser = sub.add_parser(
        name,
        help=help,
        description=description,
        epilog="examples:\n" + "".join(f"  {e}\n" for e in examples) + "\n" + EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser for every symgrad command."""
    from symgrad._version import __version__

    parser = _Parser(
        prog="symgrad",
        description="Symbolic gradients for ML losses, emitted as readable, stable numpy code.",
        epilog="examples:\n  symgrad generate --check\n  symgrad list\n  symgrad show huber\n"
        "  symgrad verify my_losses.py\n  symgrad train --data data.csv --label target\n"
        "  symgrad predict --model model.npz --data data.csv -o predictions.csv\n\n"
        "Run `symgrad COMMAND --help` for each command's options.\n\n" + EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"symgrad {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    target_help = "a Python file (my_losses.py) or importable module (pkg.losses) defining specs"

    gen = _command(
        sub,
        "generate",
        "emit numpy kernels for specs (or check that they are up to date)",
        "Emit one numpy module per TARGET into DIR (default ./generated). With no TARGET, the "
        "targets, output and backends come from [tool.symgrad] in the nearest pyproject.toml; "
        "without one, the built-in library is regenerated, only inside a symgrad checkout. All targets are rendered before any file is written, "
        "and each file is written to a temporary and renamed into place. Only files whose first "
        "line is exactly '# symgrad-generated: v1' are ever overwritten or removed; a symbolic "
        "link, FIFO or device in the way is refused, never replaced.",
        [
            "symgrad generate                          # the targets of [tool.symgrad]",
            "symgrad generate --check                  # CI: exit 1 if generated/ is stale",
            "symgrad generate --check --diff           # ... and show what would change",
            "symgrad generate my_losses.py -o kernels  # writes kernels/my_losses.py",
            "symgrad generate my_losses.py -o kernels --prune",
        ],
    )
    gen.add_argument("targets", nargs="*", metavar="TARGET", help=target_help)
    gen.add_argument(
        "-o",
        "--output",
        metavar="DIR",
        help="output folder (default: ./generated, or [tool.symgrad] output)",
    )
    gen.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if any file is stale"
    )
    gen.add_argument(
        "--diff",
        action="store_true",
        help="print a unified diff of what would change; write nothing",
    )
    gen.add_argument(
        "--prune",
        action="store_true",
        help="remove generated files in DIR whose spec file or module no longer exists",
    )
    gen.add_argument(
        "--fast",
        action="store_true",
        help="skip safe mode (the check of every emitted function against the plain formula)",
    )
    gen.add_argument(
        "--backend",
        "--target",
        dest="backend",
        action="append",
        choices=("numpy", "array-api", "cupy"),
        help="what to lower to, repeatable: numpy (NAME.py), array-api (NAME_xp.py), cupy "
        "(NAME_cupy.py); default numpy for your TARGETs, all three for the built-in library",
    )
    gen.add_argument("-q", "--quiet", action="store_true", help="print errors only")
    gen.add_argument("-v", "--verbose", action="store_true", help="also name unchanged files")
    gen.set_defaults(func=_generate)

    lst = _command(
        sub,
        "list",
        "list kernels with role, inputs and hyper-parameters",
        "List the kernels of each TARGET (default: the built-in library).",
        ["symgrad list", "symgrad list my_losses.py", "symgrad list mypkg.losses"],
    )
    lst.add_argument("targets", nargs="*", metavar="TARGET", help=target_help)
    lst.set_defaults(func=_list)

    show = _command(
        sub,
        "show",
        "print a kernel's expression, derivatives or emitted code",
        "Print a kernel's expression and the derivatives symgrad emits (pretty-printed, or "
        "LaTeX), or the code it emits. NAME is module.kernel (losses.huber) or a bare name "
        "that is unique (huber).",
        [
            "symgrad show huber",
            "symgrad show losses.l1 --latex",
            "symgrad show softmax --code",
            "symgrad show my_loss --target my_losses.py",
        ],
    )
    show.add_argument("name", metavar="NAME", help="kernel name: losses.huber or huber")
    show.add_argument(
        "-t",
        "--target",
        action="append",
        metavar="TARGET",
        help=f"look in TARGET instead of the built-in library (repeatable); {target_help}",
    )
    fmt = show.add_mutually_exclusive_group()
    fmt.add_argument("--latex", action="store_true", help="print LaTeX instead of pretty text")
    fmt.add_argument("--code", action="store_true", help="print the emitted numpy code")
    show.set_defaults(func=_show)

    ver = _command(
        sub,
        "verify",
        "gradient-check kernels against finite differences",
        "Compile every kernel of each TARGET (default: the built-in library) in memory and "
        "compare each emitted derivative with float64 central finite differences at random "
        "points and at awkward ones (0, +-1e-8, +-30, +-700; inside (0, 1) for inputs that "
        "must be probabilities). Points where the function is undefined or within a step of a "
        "kink are skipped. Prints a table; exits 1 if any kernel fails.",
        ["symgrad verify", "symgrad verify my_losses.py", "symgrad verify my_losses.py --seed 7"],
    )
    ver.add_argument("targets", nargs="*", metavar="TARGET", help=target_help)
    ver.add_argument("--seed", type=seed, default=0, help="seed of the random points (default 0)")
    ver.add_argument(
        "--rtol", type=tolerance, default=1e-5, help="relative tolerance (default 1e-5)"
    )
    ver.add_argument(
        "--atol", type=tolerance, default=1e-8, help="absolute tolerance (default 1e-8)"
    )
    ver.set_defaults(func=_verify)

    from symgrad.cli.train_flags import add_arguments

    train = _command(
        sub,
        "train",
        "fit a model with symgrad's kernels from the terminal",
        "Train a model on a CSV, parquet or .npz file or a scikit-learn bundled dataset, with a "
        "generated loss, activation and regularizer, and print training and validation "
        "metrics. Defaults follow scikit-learn's estimators: linear, logistic and softmax "
        "models are solved to convergence by Newton's method (the classifiers with "
        "scikit-learn's default L2 penalty, C=1); an mlp is trained by adam on standardized "
        "targets. Features are standardized; the validation part keeps each class's share. "
        "Writes a model file for `symgrad predict` (parameters, standardization, feature and "
        "label names, kernels, metrics; never a pickle) and, when matplotlib is installed, a "
        "loss-curve PNG. Existing files are replaced only with --force. Exits 1 if training "
        "diverges.",
        [
            "symgrad train --data diabetes              # linear regression -> model.npz",
            "symgrad train --data diabetes --force      # ... again, replacing model.npz",
            "symgrad train --data iris --optimizer lbfgs -o iris.npz",
            "symgrad train --data wine --model mlp --hidden 32 --epochs 50 -o wine.npz",
            "symgrad train --data diabetes --loss huber --param loss.delta=30 -o huber.npz",
            "symgrad train --data data.csv --label target --model mlp --hidden 32 "
            "--activation tanh --regularizer l2 --lam 1e-3 --optimizer adam --lr 0.005 "
            "-o run1.npz",
        ],
    )
    add_arguments(train)
    train.set_defaults(func=_train)

    from symgrad.cli import predict

    pred = _command(
        sub,
        "predict",
        "predict with a model file from symgrad train",
        "Apply a model file written by `symgrad train` to the features in FILE (matched by "
        "column name) and write a CSV with a 'prediction' column in the label's units, and "
        "one probability column per class (p_LABEL) for classifiers. The model file is checked "
        "(format, checksum, shapes) and never unpickled or run.",
        [
            "symgrad predict --model model.npz --data data.csv -o predictions.csv",
            "symgrad predict --model model.npz --data data.csv -o predictions.csv --force",
        ],
    )
    predict.add_arguments(pred)
    pred.set_defaults(func=_predict)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line and return its exit code."""
    _interrupt.release()  # from here on Ctrl-C unwinds normally (temporaries removed)
    report = Report()
    try:
        args = build_parser().parse_args(argv)
        with warnings.catch_warnings():
            # numpy's RuntimeWarnings (overflow at a probe point …) would break the one-line
            # status output; every command checks its results itself
            warnings.simplefilter("ignore", RuntimeWarning)
            return args.func(args)
    except KeyboardInterrupt:
        report.interrupt()
    except InternalError as exc:  # symgrad's own rules failed (safe mode caught it)
        if os.environ.get("SYMGRAD_TRACEBACK"):
            raise
        report.internal_error(str(exc))
    except SymgradError as exc:  # a problem with the user's input that slipped through
        report.bad_input(str(exc))
    except Exception as exc:  # an internal error: black's convention is 123
        if os.environ.get("SYMGRAD_TRACEBACK"):
            raise
        report.internal_error(f"{type(exc).__name__}: {exc}")
    return report.return_code


if __name__ == "__main__":
    raise SystemExit(main())
