"""python -m rnnkit demo | bench | info"""

from __future__ import annotations

import sys

USAGE = """usage: python -m rnnkit COMMAND [options]

commands:
  demo    train the four RNN topologies (and Seq2Seq) on embedded tasks and print a table
  bench   time rnnkit against NumPy, PyTorch, Keras and ONNX Runtime on this machine
  info    version, SIMD paths and threads of this installation

'python -m rnnkit COMMAND --help' describes a command's options."""


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
    elif command == "info":
        from .runtime import info

        for key, value in info().items():
            print(f"{key}: {value}")
        return 0
    else:
        print(f"unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    return run(rest) or 0


if __name__ == "__main__":
    sys.exit(main())
