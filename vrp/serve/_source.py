"""Checking request source before it runs (the first layer of the sandbox, see `_sandbox`).

The traced block and every function shipped by value are parsed and refused, naming the line, if
they import a module outside the allow-list, touch a private, dunder or refused attribute, name a
refused builtin (unless the code binds that name itself), define a special method that would run
outside the job, or could swallow the job's time limit.
"""

import ast

from ._errors import SandboxError
from ._sandbox import FIX, REFUSED_BUILTINS, REFUSED_DEFINITIONS, attribute_problem, module_problem

_SWALLOWING = frozenset({"BaseException", "GeneratorExit", "KeyboardInterrupt", "SystemExit"})


class _Checker(ast.NodeVisitor):
    def __init__(self, bound: set[str]) -> None:
        self.bound = bound
        self.problems: list[tuple[int, str]] = []

    def refuse(self, node: ast.AST, why: str) -> None:
        self.problems.append((getattr(node, "lineno", 0), why))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if (why := module_problem(alias.name)) is not None:
                self.refuse(node, why)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level or not node.module:
            self.refuse(node, "relative imports are refused")
        elif (why := module_problem(node.module)) is not None:
            self.refuse(node, why)
        for alias in node.names:
            if (why := attribute_problem(alias.name)) is not None:
                self.refuse(node, why)
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if (why := attribute_problem(node.attr)) is not None:
            self.refuse(node, why)
        self.generic_visit(node)

    def visit_MatchClass(self, node: ast.MatchClass) -> None:
        for attr in node.kwd_attrs:  # `case C(attr=...)` reads attributes like `x.attr`
            if (why := attribute_problem(attr)) is not None:
                self.refuse(node, why)
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if node.id.startswith("__"):
            self.refuse(node, f"the name {node.id!r} is refused")
        elif isinstance(node.ctx, ast.Load) and node.id in REFUSED_BUILTINS:
            if node.id not in self.bound:
                self.refuse(node, f"the builtin {node.id}() is not available")
        self.generic_visit(node)

    def _definition(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        if node.name in REFUSED_DEFINITIONS:
            self.refuse(node, f"defining {node.name} is refused")
        self.generic_visit(node)

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _definition

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        caught = node.type
        names = caught.elts if isinstance(caught, ast.Tuple) else [caught]
        if caught is None or any(isinstance(n, ast.Name) and n.id in _SWALLOWING for n in names):
            self.refuse(
                node,
                "a bare `except:` or `except BaseException` is refused (it would swallow the "
                "job's time limit); catch Exception instead",
            )
        self.generic_visit(node)

    def _try(self, node: ast.Try | ast.TryStar) -> None:
        for statement in node.finalbody:
            for inner in ast.walk(statement):
                if isinstance(inner, ast.Return | ast.Break | ast.Continue):
                    self.refuse(inner, "return / break / continue inside `finally` is refused")
        self.generic_visit(node)

    visit_Try = visit_TryStar = _try


def _bound_names(tree: ast.AST) -> set[str]:
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            bound.add(node.id)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
    return bound


def check_source(source: str, where: str) -> None:
    """Refuses request code that the restricted environment does not run.

    Args:
      source: the code (a traced block's body, or one function shipped by value).
      where: how to name it in the message (the client's file, or the function).

    Raises:
      SandboxError: the first refused construct, with its line, and the other problems counted.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError as err:
        raise SandboxError(f"{where}: the shipped source does not parse ({err}).") from None
    checker = _Checker(_bound_names(tree))
    checker.visit(tree)
    if checker.problems:
        line, why = min(checker.problems)
        more = len(checker.problems) - 1
        extra = f" (and {more} more problem{'s' * (more > 1)})" if more else ""
        raise SandboxError(f"{where}, line {line}: {why}{extra}. {FIX}")
