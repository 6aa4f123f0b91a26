"""The symgrad command line: wires the stages to files, and holds no logic of its own."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from symgrad.errors import SymgradError
from symgrad.report import EXIT_INTERNAL, EXIT_USAGE, Report


def _generate(args: argparse.Namespace) -> int:
    from symgrad.generate import command_for, render_targets, write_atomic
    from symgrad.resources import generated_dir
    from symgrad.targets import builtin_targets, load_target

    report = Report(check=args.check)
    try:
        targets = [load_target(t) for t in args.targets] if args.targets else builtin_targets()
        out_dir = (
            Path(args.output)
            if args.output
            else (Path("generated") if args.targets else generated_dir())
        )
        outputs = render_targets(targets, out_dir, command_for(args.targets, args.output))
    except SymgradError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for out in outputs:
        name = _display(out.path)
        if not out.changed:
            report.unchanged.append(name)
            continue
        report.changed.append(name)
        if args.diff:
            sys.stdout.write(out.diff())
        if args.check or args.diff:
            print(f"would regenerate {name}", file=sys.stderr)
        else:
            try:
                write_atomic(out.path, out.text)
            except OSError as exc:
                print(f"error: cannot write {name}: {exc.strerror or exc}", file=sys.stderr)
                report.failed.append(name)
                continue
            print(f"regenerated {name}", file=sys.stderr)
    print(report.summary(), file=sys.stderr)
    return report.return_code


def _display(path: Path) -> str:
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser for every symgrad command."""
    from symgrad import __version__

    parser = argparse.ArgumentParser(prog="symgrad", description=__doc__)
    parser.add_argument("--version", action="version", version=f"symgrad {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser(
        "generate",
        help="emit numpy kernels for specs",
        description="Emit numpy kernels for the specs in TARGETs (default: the built-in library).",
        epilog="examples:\n  symgrad generate\n  symgrad generate --check\n"
        "  symgrad generate my_losses.py -o generated --diff",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    gen.add_argument("targets", nargs="*", metavar="TARGET", help="Python file or module")
    gen.add_argument("-o", "--output", metavar="DIR", help="output folder")
    gen.add_argument("--check", action="store_true", help="write nothing; exit 1 if stale")
    gen.add_argument("--diff", action="store_true", help="print a unified diff; write nothing")
    gen.set_defaults(func=_generate)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # an internal error: black's convention is 123
        print(f"internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    raise SystemExit(main())
