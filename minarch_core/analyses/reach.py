"""The code a table is computed by: its function and every definition of the package that it reaches, read as
syntax trees with docstrings stripped (comments never reach a tree). So editing words changes no table's code, and
editing what a function does changes the code of every table that reaches it, and of no other: the way Hamilton
versions a node, followed through the package's own names.

A definition reaches what its names resolve to in the package: a function, class or assignment of its own module,
or one imported from another module of the package (``from . import grids`` then ``grids.quantize``; re-exports
are followed). A class is reached whole, methods and all, so a method called on an instance is covered by naming
its class (as an annotation, a constructor, a type check). A module's statements that define no name of their own
(an ``if`` at the top, a call) are reached with any of its names. A module named bare (passed as a value) is
reached whole. What the package cannot see (torch, pandas) is pinned by the environment, not here. A function marked
``@covered`` is where reaching stops: what it returns is covered by the fingerprint's inputs already (the ids of the
runs a table reads), so neither its body nor what it calls enters the code.
"""
from __future__ import annotations

import ast
import functools
import hashlib
import io
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

PROLOGUE = "<prologue>"  # the name, in a key, of a module's statements that define no name of their own


def covered(fn):
    """Mark ``fn`` as a function whose result a table's fingerprint covers by its inputs: reaching stops there."""
    return fn


@dataclass
class Module:
    name: str
    package: bool  # an __init__.py: its relative imports start at itself
    symbols: dict[str, list[ast.stmt]] = field(default_factory=dict)  # top-level name -> statements defining it
    imports: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # local name -> (module, attribute)
    prologue: list[ast.stmt] = field(default_factory=list)  # top-level statements that define no name of their own


class Package:
    """The modules of a package read from ``root`` (the package's folder), named under ``name``."""

    def __init__(self, root: str | Path, name: str):
        root = Path(root)
        self.modules: dict[str, Module] = {}
        for path in sorted(root.rglob("*.py")):
            parts = [name, *path.relative_to(root).with_suffix("").parts]
            package = parts[-1] == "__init__"
            module = ".".join(parts[:-1] if package else parts)
            self.modules[module] = _read(module, package, ast.parse(path.read_text(), str(path)))

    def digest(self, module: str, name: str) -> str:
        """A hash of definition ``name`` of ``module`` and of everything it reaches, docstrings stripped."""
        h = hashlib.sha256()
        for key in sorted(self.reach(module, name)):
            h.update(self._dump(key))
        return h.hexdigest()

    @functools.cache
    def _dump(self, key: tuple[str, str]) -> bytes:
        if self._covered(key):
            return ":".join(key).encode()
        return "\n".join([":".join(key), *(ast.dump(s, include_attributes=False)
                                            for s in self._statements(*key))]).encode()

    def _covered(self, key: tuple[str, str]) -> bool:
        """Whether ``key`` is a function marked ``@covered``."""
        return key[1] != PROLOGUE and any(
            isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)) and any(
                (d.id if isinstance(d, ast.Name) else getattr(d, "attr", None)) == "covered" for d in s.decorator_list)
            for s in self._statements(*key))

    def reach(self, module: str, name: str) -> set[tuple[str, str]]:
        """Every (module, name) that definition ``name`` of ``module`` reaches, itself included, with the
        ``PROLOGUE`` of every module reached."""
        if name not in self.modules[module].symbols:
            raise KeyError(f"{module} defines no {name!r}")
        seen, todo = set(), [(module, name)]
        while todo:
            key = todo.pop()
            if key in seen:
                continue
            seen.add(key)
            todo.extend(self._edges(key) - seen)
        return seen

    @functools.cache
    def _edges(self, key: tuple[str, str]) -> set[tuple[str, str]]:
        """What one definition names directly, and its module's prologue (which comes with any of its names)."""
        if self._covered(key):
            return set()
        return self._references(key[0], self._statements(*key)) | {(key[0], PROLOGUE)}

    def _statements(self, mod: str, sym: str) -> list[ast.stmt]:
        m = self.modules[mod]
        return m.prologue if sym == PROLOGUE else m.symbols[sym]

    def _references(self, mod: str, statements: list[ast.stmt]) -> set[tuple[str, str]]:
        out: set[tuple[str, str]] = set()
        for stmt in statements:
            self._visit(mod, stmt, frozenset(), out)
        return out

    def _visit(self, mod: str, node: ast.AST, local: frozenset, out: set) -> None:
        """Add to ``out`` what the names in ``node`` reach; ``local``: names a function binds, which hide the
        module's (a table's parameter ``variants`` is not the table ``variants``)."""
        if isinstance(node, (ast.Attribute, ast.Name)):
            attrs = []
            while isinstance(node, ast.Attribute):
                attrs.append(node.attr)
                node = node.value
            if not isinstance(node, ast.Name):
                self._visit(mod, node, local, out)  # a call's or a subscript's result: its own parts
            elif node.id not in local:
                out |= self._follow(mod, node.id, attrs[::-1])
            return
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            outer = [*getattr(node, "decorator_list", []), *node.args.defaults,
                     *(d for d in node.args.kw_defaults if d is not None), *_annotations(node)]
            for part in outer:  # evaluated where the function is defined
                self._visit(mod, part, local, out)
            inner = local | _bound(node)
            for part in (node.body if isinstance(node.body, list) else [node.body]):
                self._visit(mod, part, inner, out)
            return
        for child in ast.iter_child_nodes(node):
            self._visit(mod, child, local, out)

    def _follow(self, mod: str, name: str, attrs: list[str]) -> set[tuple[str, str]]:
        """What ``name.attr1.attr2...`` in ``mod`` reaches in the package (nothing for a local or an outside name)."""
        target = self._resolve(mod, name)
        for attr in attrs:
            if target is None or target[1] is not None:
                break  # outside the package, or a definition (a class is reached whole, attributes and all)
            inner = self._resolve(target[0], attr)
            if inner is None:  # an attribute the module does not define: conservatively, all of it
                break
            target = inner
        if target is None:
            return set()
        if target[1] is None:  # a module used bare (or an attribute it does not define): all of it
            return {(target[0], PROLOGUE), *((target[0], s) for s in self.modules[target[0]].symbols)}
        return {target}

    @functools.cache
    def _resolve(self, mod: str, name: str, depth: int = 0) -> tuple[str, str | None] | None:
        """What ``name`` means at the top of ``mod``: (module, definition), (module, None) for a module, or None."""
        m = self.modules[mod]
        if name in m.symbols:
            return mod, name
        if name not in m.imports or depth > 20:
            return None
        base, attr = m.imports[name]
        if attr is None:
            return (base, None) if base in self.modules else None
        if f"{base}.{attr}" in self.modules:
            return f"{base}.{attr}", None
        return self._resolve(base, attr, depth + 1) if base in self.modules else None


def _read(name: str, package: bool, tree: ast.Module) -> Module:
    module = Module(name, package)
    _strip_docstrings(tree)
    for stmt in tree.body:
        if isinstance(stmt, ast.ImportFrom):
            if stmt.module == "__future__":
                continue
            base = _absolute(name, package, stmt.level, stmt.module)
            for alias in stmt.names:
                module.imports[alias.asname or alias.name] = (base, alias.name)
        elif isinstance(stmt, ast.Import):
            for alias in stmt.names:
                if alias.asname:
                    module.imports[alias.asname] = (alias.name, None)
                else:
                    module.imports[alias.name.split(".")[0]] = (alias.name.split(".")[0], None)
        elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            module.symbols.setdefault(stmt.name, []).append(stmt)
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign)) and _names(stmt):
            for target in _names(stmt):
                module.symbols.setdefault(target, []).append(stmt)
        elif not isinstance(stmt, ast.Pass):
            module.prologue.append(stmt)
            for node in ast.walk(stmt):  # names bound inside a top-level if / try / for: defined by it
                if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                    module.symbols.setdefault(node.id, []).append(stmt)
    return module


def _bound(fn: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> frozenset:
    """The names a function binds: its parameters, and what its body assigns or defines (unless declared global)."""
    a = fn.args
    names = {x.arg for x in [*a.posonlyargs, *a.args, *a.kwonlyargs, *filter(None, [a.vararg, a.kwarg])]}
    declared = set()
    for node in ast.walk(fn) if not isinstance(fn, ast.Lambda) else ():
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node is not fn:
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {alias.asname or alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            declared |= set(node.names)
    return frozenset(names - declared)


def _annotations(fn) -> list[ast.expr]:
    if isinstance(fn, ast.Lambda):
        return []
    a = fn.args
    args = [*a.posonlyargs, *a.args, *a.kwonlyargs, *filter(None, [a.vararg, a.kwarg])]
    return [x.annotation for x in args if x.annotation is not None] + ([fn.returns] if fn.returns else [])


def _names(stmt: ast.Assign | ast.AnnAssign) -> list[str]:
    targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
    out = []
    for target in targets:
        for node in ast.walk(target):
            if isinstance(node, ast.Name):
                out.append(node.id)
            elif not isinstance(node, (ast.Tuple, ast.List, ast.Starred, ast.Store, ast.Load)):
                return []  # an attribute or item assigned (``x.y = 1``): a statement of the prologue
    return out


def _absolute(name: str, package: bool, level: int, module: str | None) -> str:
    if level == 0:
        return module or ""
    parts = name.split(".")
    base = parts if package else parts[:-1]
    base = base[:len(base) - (level - 1)]
    return ".".join([*base, module] if module else base)


def _strip_docstrings(tree: ast.AST) -> None:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(
                    first.value.value, str):
                node.body = node.body[1:] or [ast.Pass()]


def reword(text: str) -> str:
    """Python source ``text`` with every docstring and comment reworded and a comment line above each top-level
    function: an edit of words only, which must change no table's code (``tests/test_reach.py``, the benchmark)."""
    lines = text.splitlines(keepends=True)
    edits = []  # (line, column, insert)
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(
                    first.value.value, str):
                line = lines[first.lineno - 1]
                quote = line[first.col_offset:first.col_offset + 3]
                width = 3 if quote in ('"""', "'''") else 1
                edits.append((first.lineno, first.col_offset + width, "Reworded. "))
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type == tokenize.COMMENT:
            edits.append((token.end[0], token.end[1], ", reworded"))
    for line, column, insert in sorted(edits, reverse=True):
        lines[line - 1] = lines[line - 1][:column] + insert + lines[line - 1][column:]
    return "".join(("# a new comment\n" + line) if line.startswith("def ") else line for line in lines)
