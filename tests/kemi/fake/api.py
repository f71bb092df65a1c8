"""The KEMI API: the checked-in function list of Kamailio 5.6, the live
``app_python.api_list`` parser, and the base of the fake's modules, which checks
calls the way app_python3 parses KEMI arguments."""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from tests.kemi.fake.world import FakeKamailio

API_FILE = Path(__file__).resolve().parents[2] / "data" / "kamailio" / "kemi-api-5.6.txt"

# A signature in the API file's notation: ("str, int", "int").
Signature = tuple[str, str]
Xval = str | int | None

CORE = "core"


# ----- the KEMI API file and the live list -----


def parse_api_file(text: str) -> dict[tuple[str, str], Signature]:
    """``[module]`` sections of ``name(params) -> ret`` lines, keyed by (module, name)."""
    functions: dict[tuple[str, str], Signature] = {}
    module: str | None = None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        section = re.fullmatch(r"\[(\w+)\]", line.strip())
        if section:
            module = section.group(1)
            continue
        entry = re.fullmatch(r"\s+(\w+)\(([^)]*)\) -> (\w+)", line)
        if entry is None or module is None:
            raise ValueError(f"line {number}: not a KEMI function: {line!r}")
        functions[(module, entry.group(1))] = (entry.group(2), entry.group(3))
    return functions


def parse_api_list(output: str) -> dict[tuple[str, str], Signature]:
    """``kamcmd app_python.api_list`` output; the core functions have an empty module."""
    functions: dict[tuple[str, str], Signature] = {}
    pattern = re.compile(
        r"func: \{\s*ret: (\S+)\s*module: ?(\S*)\s*name: (\S+)\s*params: ([^\n]*)\n"
    )
    for ret, module, name, params in pattern.findall(output):
        functions[(module or CORE, name)] = (params.strip(), ret)
    size = re.search(r"msize: (\d+)", output)
    if size is None or int(size.group(1)) != len(functions):
        raise ValueError(f"api_list: msize {size and size.group(1)} but {len(functions)} found")
    return functions


def load_api() -> dict[tuple[str, str], Signature]:
    return parse_api_file(API_FILE.read_text())


_TYPES: dict[Any, str] = {str: "str", int: "int"}
_RETURNS: dict[Any, str] = {bool: "bool", int: "int", None: "none", Xval: "xval"}


def _checked(module: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """Check a call the way app_python3 parses KEMI arguments: positional, typed."""
    params = list(inspect.signature(func, eval_str=True).parameters.values())[1:]
    name = f"KSR.{func.__name__}" if module == CORE else f"KSR.{module}.{func.__name__}"

    @functools.wraps(func)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs:
            raise TypeError(f"{name}: KEMI functions take no keyword arguments")
        if len(args) != len(params):
            raise TypeError(f"{name}: takes {len(params)} arguments, {len(args)} given")
        for param, arg in zip(params, args, strict=True):
            if not isinstance(arg, param.annotation):
                raise TypeError(
                    f"{name}: argument {param.name} must be {param.annotation.__name__}, "
                    f"not {type(arg).__name__}"
                )
        return func(self, *args)

    return call


class _Module:
    """A KSR module: its public methods are the KEMI functions it offers."""

    module: ClassVar[str]

    def __init_subclass__(cls, module: str, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.module = module
        for name, value in list(vars(cls).items()):
            if not name.startswith("_") and inspect.isfunction(value):
                setattr(cls, name, _checked(module, value))

    def __init__(self, kam: FakeKamailio) -> None:
        self._k = kam

    def __getattr__(self, name: str) -> Any:
        prefix = "KSR" if self.module == CORE else f"KSR.{self.module}"
        raise AttributeError(f"the fake KSR does not implement {prefix}.{name}")

    @classmethod
    def offered(cls) -> dict[str, Signature]:
        """KEMI name -> (params, ret) in the API file's notation."""
        functions: dict[str, Signature] = {}
        for name, value in vars(cls).items():
            if name.startswith("_") or not inspect.isfunction(value):
                continue
            sig = inspect.signature(inspect.unwrap(value), eval_str=True)
            params = [_TYPES[p.annotation] for p in list(sig.parameters.values())[1:]]
            functions[name] = (", ".join(params) or "none", _RETURNS[sig.return_annotation])
        return functions
