"""Runs classes straight from a provider's source files without importing the package.

vLLM and SGLang cannot be imported here (they need torch and a GPU), but their response
classes are plain pydantic models and dataclasses. This loader takes the module sources out
of the wheel, finds each wanted top-level definition, and executes just that definition;
every name it needs is looked up among the same sources' top-level definitions and
executed first. A name defined nowhere in the given sources (torch, numpy, loggers, types
of fields the recording leaves at their defaults) becomes `typing.Any`, and is listed in
`stubbed` so the SOURCES.md can say so.
"""

import ast
import dataclasses
import enum
import json
import logging
import time
import typing
import zipfile

import pydantic


class _Logger(logging.Logger):
    def warning_once(self, *args, **kwargs):
        pass

    def info_once(self, *args, **kwargs):
        pass

    def debug_once(self, *args, **kwargs):
        pass


def _base_namespace():
    namespace = {"__name__": "recorded_source", "__builtins__": __builtins__}
    for module in (typing, pydantic):
        for name in getattr(module, "__all__", dir(module)):
            if not name.startswith("_"):
                namespace[name] = getattr(module, name)
    namespace.update({
        "dataclass": dataclasses.dataclass, "field": dataclasses.field,
        "dataclasses": dataclasses, "time": time, "json": json, "enum": enum,
        "Enum": enum.Enum, "IntEnum": enum.IntEnum, "TYPE_CHECKING": False,
        "logger": _Logger("recorded_source"),
    })
    import collections.abc
    for name in ("Sequence", "Mapping", "MutableSequence", "Iterable", "Iterator",
                 "AsyncGenerator", "Callable"):
        namespace[name] = getattr(collections.abc, name)
    return namespace


class SourceModules:
    def __init__(self, wheel_path, module_paths):
        self.sources = {}
        self.trees = {}
        with zipfile.ZipFile(wheel_path) as wheel:
            for path in module_paths:
                self.sources[path] = wheel.read(path).decode("utf-8")
                self.trees[path] = ast.parse(self.sources[path], filename=path)
        self.namespace = _base_namespace()
        # The sources' own imports of installed packages (stdlib, pydantic, openai, numpy);
        # the provider's own package and anything missing (torch) are left out.
        for tree in self.trees.values():
            for node in tree.body:
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    module = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
                    if not module or module.split(".")[0] in {p.split("/")[0] for p in module_paths}:
                        continue
                    try:
                        exec(compile(ast.Module(body=[node], type_ignores=[]), "<import>", "exec"),
                             self.namespace)
                    except ImportError:
                        pass
        self.defined = set()
        self.stubbed = set()
        self.lines = {}

    def _definitions(self, name):
        for path, tree in self.trees.items():
            for node in tree.body:
                if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and node.name == name:
                    yield path, node
                elif isinstance(node, ast.Assign) and any(
                        isinstance(t, ast.Name) and t.id == name for t in node.targets):
                    yield path, node
                elif (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                      and node.target.id == name):
                    yield path, node

    def define(self, name, prefer=None):
        """Executes the definition of `name` (from module `prefer` when several have it)."""
        if name in self.defined:
            return self.namespace[name]
        found = list(self._definitions(name))
        if prefer:
            found.sort(key=lambda item: item[0] != prefer)
        if not found:
            self.namespace[name] = typing.Any
            self.stubbed.add(name)
            self.defined.add(name)
            return typing.Any
        path, node = found[0]
        code = compile(ast.Module(body=[node], type_ignores=[]), path, "exec")
        for _attempt in range(200):
            try:
                exec(code, self.namespace)
                break
            except NameError as error:
                missing = error.name
                if missing is None or missing in self.defined:
                    raise
                self.define(missing)
        else:
            raise RuntimeError(f"could not define {name}")
        self.defined.add(name)
        self._define_used_names(node)
        start = node.decorator_list[0].lineno if getattr(node, "decorator_list", None) else None
        self.lines[name] = (path, getattr(node, "lineno", start))
        return self.namespace[name]

    def stub(self, *names):
        """Leaves `names` as `typing.Any`: types the recording never builds (request models
        that only annotate a parameter)."""
        for name in names:
            self.namespace[name] = typing.Any
            self.stubbed.add(name)
            self.defined.add(name)

    def _define_used_names(self, node):
        """Defines the names a body uses when it runs (function bodies are not run at
        definition, so their NameErrors would come later), where the sources define them."""
        for inner in ast.walk(node):
            if (isinstance(inner, ast.Name) and isinstance(inner.ctx, ast.Load)
                    and inner.id not in self.namespace and inner.id not in self.defined
                    and any(True for _ in self._definitions(inner.id))):
                self.define(inner.id)

    def method(self, class_name, method_name):
        """A method of a class in the sources, executed as a plain function (call it with a
        stand-in `self`)."""
        for path, tree in self.trees.items():
            for node in tree.body:
                if not (isinstance(node, ast.ClassDef) and node.name == class_name):
                    continue
                for item in node.body:
                    if isinstance(item, ast.FunctionDef) and item.name == method_name:
                        key = f"{class_name}.{method_name}"
                        item = ast.fix_missing_locations(item)
                        code = compile(ast.Module(body=[item], type_ignores=[]), path, "exec")
                        scratch = {}
                        for _attempt in range(200):
                            try:
                                exec(code, self.namespace, scratch)
                                break
                            except NameError as error:
                                self.define(error.name)
                        self._define_used_names(item)
                        function = scratch[method_name]
                        self.lines[key] = (path, item.lineno)
                        return function
        raise SystemExit(f"{class_name}.{method_name} is not in the sources: update the recorder")

    def cite(self, name):
        path, line = self.lines[name]
        return f"`{path}:{line}` ({name})"

    def line_of(self, path, needle):
        for number, line in enumerate(self.sources[path].splitlines(), 1):
            if needle in line:
                return f"`{path}:{number}`"
        raise SystemExit(f"{needle!r} is no longer in {path}: update the recorder")
