"""`streamsnn classes MODEL.npz [--remove NAME] [--rename OLD NEW]`: list, remove or rename a checkpoint's classes."""

from __future__ import annotations

import json

ORDER = 55


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "classes",
        help="list, remove or rename the classes of a model checkpoint",
        description="List the classes of a model checkpoint (output, name; a name that is not a valid class "
                    "name is marked), or edit them: --rename OLD NEW gives a class another name (weights kept), "
                    "--remove NAME removes its output unit (the other classes' scores stay as they were; the "
                    "classes after it move down one output). NAME is a class name (matched regardless of case) "
                    "or #N for output N as listed; every NAME refers to the list before the edits. The model is "
                    "saved in place atomically. Run it while no daemon uses the model (a daemon saves its own "
                    "copy at exit).",
    )
    p.add_argument("model", help="model checkpoint (.npz)")
    p.add_argument("--remove", action="append", default=[], metavar="NAME", help="remove this class (repeatable)")
    p.add_argument("--rename", action="append", default=[], nargs=2, metavar=("OLD", "NEW"),
                   help="rename class OLD to NEW (repeatable)")
    p.add_argument("--json", action="store_true", help="print the classes as one JSON object")
    p.set_defaults(func=run)


def _problems(names: list[str]) -> dict[int, str]:
    """Output -> why its stored name is not a valid class name (or matches an earlier one)."""
    from ..classnames import key, normalise

    out, seen = {}, {}
    for i, name in enumerate(names):
        try:
            k = key(normalise(name))
        except ValueError as exc:
            out[i] = str(exc)
            continue
        if k in seen:
            out[i] = f"the same name as output {seen[k]} (names are matched regardless of case)"
        seen.setdefault(k, i)
    return out


def edit(net, removes: list[str], renames: list[tuple[str, str]]) -> list[str]:
    """Apply the edits (names resolved against the classes before any edit); returns what was done, one line each."""
    from ..errors import ConfigError
    from ..snn.classedit import rename_classes
    from ..textsafe import shown

    targets = [net.class_index(n) for n in removes] + [net.class_index(old) for old, _ in renames]
    if len(set(targets)) != len(targets):
        raise ConfigError("a class is named by more than one --remove/--rename; edit each class once")
    left = net.n_classes - len(removes)
    if left < 2:
        raise ConfigError(f"removing {len(removes)} of the {net.n_classes} classes would leave {left}; "
                          "a model keeps at least 2 classes")
    before = list(net.classes)
    renamed = targets[len(removes):]
    rename_classes(net, {index: new for (_, new), index in zip(renames, renamed)}, removed=set(targets[:len(removes)]))
    done = [f"renamed output {index} '{shown(before[index])}' to '{shown(net.classes[index])}'" for index in renamed]
    for index in sorted(targets[:len(removes)], reverse=True):  # from the end: earlier indices stay valid
        name = net.classes[index]
        net.remove_class(index)
        done.append(f"removed output {index} '{shown(name)}'")
    return done


def run(args) -> int:
    import sys

    from ..snn import SpikingNetwork
    from ..textsafe import shown

    net = SpikingNetwork.load(args.model, any_names=True)
    done = edit(net, args.remove, [tuple(r) for r in args.rename]) if args.remove or args.rename else []
    if done:
        net.save(args.model)
    problems = _problems(net.classes)
    if args.json:
        print(json.dumps({"path": str(args.model), "classes": list(net.classes), "changed": done,
                          "invalid": {str(i): why for i, why in problems.items()}}))
    else:
        for line in done:
            print(line)
        for i, name in enumerate(net.classes):
            print(f"{i:>4}  {shown(name, None)}" + (f"  (invalid: {problems[i]})" if i in problems else ""))
    if problems:
        print(f"streamsnn: warning: {len(problems)} class name(s) of {shown(args.model, None)} are not valid; "
              "the model does not load until each is renamed (--rename '#N' NAME) or removed (--remove '#N')",
              file=sys.stderr)
    return 0
