"""Command-line plumbing shared by the entry points, built from the parameter declarations
(:mod:`hwr.config.params`): the argparse parser and ``--help`` of each verb, the README's
parameter tables, and one clear line instead of a stack trace for the project's own errors.

``python -m hwr.cli readme README.md`` rewrites the README's parameter tables from the
declarations (``--check`` only compares them).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Callable

from hwr.config.params import Config, Declaration, parse_bool
from hwr.errors import HwrError


def _argument_type(decl: Declaration, default) -> Callable:
    if isinstance(default, bool):
        return parse_bool
    if decl.parse is not None:
        return str  # parsed (and checked) by Config.replace
    return type(default)


def add_params(parser, config: type[Config]) -> None:
    """``--name`` options for every flat parameter of ``config``, with its help and default."""
    for name, (decl, default) in config.declarations().items():
        help_text = decl.full_help().replace("%", "%%")
        parser.add_argument(f"--{name}", type=_argument_type(decl, default), default=decl.as_text(default)
                            if decl.parse else default, help=f"{help_text} (default: {decl.as_text(default)!r})")


def build_parser(config: type[Config], description: str) -> argparse.ArgumentParser:
    """The parser of a verb: its docstring as description, one option per flat parameter."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_params(parser, config)
    return parser


def parse_config(config: type[Config], description: str, argv: list[str] | None = None) -> Config:
    """Parse the command line into a validated configuration (a :class:`ConfigError` names the
    first bad parameter)."""
    args = vars(build_parser(config, description).parse_args(argv))
    return config.from_flat(args).validate() if hasattr(config, "from_flat") else config().replace(**args).validate()


def run_cli(main: Callable[[], object]) -> None:
    """Run an entry point; the project's own errors exit with status 2 and one line on stderr."""
    try:
        main()
    except HwrError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


def _cell_default(decl: Declaration, default) -> str:
    text = decl.as_text(default)
    return f"`{text}`" if text else "(empty)"


def markdown_table(config: type[Config], shared: dict[str, tuple[str, str]] | None = None) -> str:
    """The README table of a verb's parameters: one row per parameter, from its declaration.

    Args:
        shared: nested configuration field -> (the verb it is documented with, what it is), e.g.
            ``{"data": ("train", "the data set")}``: those parameters get one row saying so.
    """
    shared = shared or {}
    rows = ["| parameter | default | meaning |", "|---|---|---|"]
    folded = {field: set(config.nested()[field].declarations()) for field in shared}
    done: set[str] = set()
    for name, (decl, default) in config.declarations().items():
        group = next((f for f, names in folded.items() if name in names), None)
        if group is None:
            rows.append(f"| `{name}` | {_cell_default(decl, default)} | {decl.full_help()} |")
        elif group not in done:
            done.add(group)
            names = [n for n in config.declarations() if n in folded[group]]
            verb, meaning = shared[group]
            rows.append(f"| {', '.join(f'`{n}`' for n in names)} | as `{verb}` | {meaning} |")
    return "\n".join(rows)


def readme_tables() -> dict[str, str]:
    """Every verb's README parameter table, by verb."""
    from hwr.config import FinetuneConfig, PredictConfig, PretrainConfig, PromoteConfig, TrainConfig
    from hwr.tuning.config import TuneConfig

    return {
        "train": markdown_table(TrainConfig),
        "finetune": markdown_table(FinetuneConfig, {"data": ("train", "the new collection, read exactly as `train` reads it")}),
        "tune": markdown_table(TuneConfig, {"train": ("train", "the value of every parameter the search space does not "
                                                      "vary; `model_name`, `full_model_name` and `register` apply to "
                                                      "the registration of the best trial")}),
        "pretrain": markdown_table(PretrainConfig, {"train": ("train", "the collection the base model is for (its "
                                                              "training labels give the text, its training images "
                                                              "the geometry) and the training settings")}),
        "predict": markdown_table(PredictConfig),
        "promote": markdown_table(PromoteConfig, {"data": ("train", "the evaluation data, read as `train` reads it "
                                                          "(the same split: keep `seed` and the fractions)")}),
    }


def rewrite_readme(text: str, tables: dict[str, str]) -> str:
    """``text`` with each ``<!-- params:VERB -->`` ... ``<!-- /params:VERB -->`` block replaced by
    that verb's table.

    Raises:
        ValueError: a verb whose markers are missing.
    """
    for verb, table in tables.items():
        pattern = re.compile(rf"(<!-- params:{verb} -->\n).*?(\n<!-- /params:{verb} -->)", re.S)
        if not pattern.search(text):
            raise ValueError(f"README has no <!-- params:{verb} --> ... <!-- /params:{verb} --> block")
        text = pattern.sub(lambda m: m.group(1) + table + m.group(2), text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Rewrite (or --check) the README's parameter tables.")
    parser.add_argument("command", choices=["readme"])
    parser.add_argument("path", type=Path)
    parser.add_argument("--check", action="store_true", help="only report whether the tables are current")
    args = parser.parse_args(argv)
    old = args.path.read_text(encoding="utf-8")
    new = rewrite_readme(old, readme_tables())
    if args.check:
        print("up to date" if new == old else f"{args.path}: parameter tables differ from the declarations")
        return 0 if new == old else 1
    args.path.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
