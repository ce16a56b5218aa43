"""python -m rnnkit demo | bench | gradients | info | export"""

from __future__ import annotations

import sys

USAGE = """usage: python -m rnnkit COMMAND [options]

commands:
  demo    train the four RNN topologies (and Seq2Seq) on embedded tasks, print a table, write a report
  bench   time rnnkit against NumPy, PyTorch, Keras and ONNX Runtime on this machine
  gradients  vanishing and exploding gradients: each cell's gradient flow, and how far back it learns
  info    version, SIMD paths and threads of this installation
  export  write a saved model (Model.save's .npz) as an ONNX graph (needs the onnx package)

'python -m rnnkit COMMAND --help' describes a command's options."""


def export(argv: list[str]) -> int:
    """python -m rnnkit export MODEL.npz MODEL.onnx [--max-steps N] [--opset N] [--float32]"""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m rnnkit export",
        description="Write a model saved by rnnkit's Model.save as an ONNX graph that ONNX Runtime runs to the "
                    "model's predictions (see rnnkit._onnx for its inputs and outputs).")
    parser.add_argument("model", help="the saved model (.npz, from Model.save)")
    parser.add_argument("output", help="the ONNX file to write (replaced atomically if it exists)")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="OneToMany / Seq2Seq: the steps to generate (default: the longest target fit saw)")
    parser.add_argument("--opset", type=int, default=None, help="the ONNX opset (default: 17)")
    parser.add_argument("--float32", action="store_true",
                        help="export a float64 model with its weights cast to float32 (ONNX Runtime has no float64 "
                             "RNN, LSTM and GRU)")
    args = parser.parse_args(argv)
    options = {"max_steps": args.max_steps, "opset": args.opset, "dtype": "float32" if args.float32 else None}
    try:
        from ._model import Model

        model = Model.load(args.model)
        model.to_onnx(args.output, **{k: value for k, value in options.items() if value is not None})
    except (ImportError, OSError, ValueError, TypeError) as exc:  # no onnx; a missing, bad or unsupported file
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.output} ({type(model).__name__})")
    return 0


def usage_error(message: str) -> int:
    """A user error: one line on stderr and exit status 2 (as argparse's), never a traceback."""
    print(f"python -m rnnkit: error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    command, rest = argv[0], argv[1:]
    if command == "demo":
        from .demo import main as run
    elif command == "bench":
        from .bench import main as run
    elif command == "gradients":
        from .gradients import main as run
    elif command == "export":
        run = export
    elif command == "info":
        if rest and rest[0] in ("-h", "--help"):
            print("usage: python -m rnnkit info\n\nPrint the version, SIMD paths and threads of this installation.")
            return 0
        if rest:
            return usage_error(f"info takes no arguments, got {' '.join(rest)!r}")
        from .runtime import info

        for key, value in info().items():
            print(f"{key}: {value}")
        return 0
    else:
        return usage_error(f"unknown command {command!r}: expected one of demo, bench, gradients, info, export "
                           "(python -m rnnkit --help describes them)")
    return run(rest) or 0


if __name__ == "__main__":
    sys.exit(main())
