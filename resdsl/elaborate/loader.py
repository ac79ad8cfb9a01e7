"""Loading `.res` files: parsing, imports (the importing file's folder, then stdlib/),
cycle detection, and the module-level namespace."""
from __future__ import annotations

from pathlib import Path

from ..diagnostics import ResdslError, SourceFile, Span, did_you_mean
from ..frontend import ast
from ..frontend.read import parse
from ..ir.ops import OPS
from .values import BUILTINS, CONSTANTS, BlockRef, Builtin, Fn, ModuleEnv, OpRef

STDLIB = Path(__file__).resolve().parents[1] / "stdlib"
if not STDLIB.exists():  # source checkout: stdlib/ sits beside resdsl/
    STDLIB = Path(__file__).resolve().parents[2] / "stdlib"

PRIMITIVES = ("std",)  # `import std` names the primitive ops, which are always available


def base_env() -> dict:
    env = {name: OpRef(d) for name, d in OPS.items()}
    env.update({name: Builtin(name, fn) for name, fn in BUILTINS.items()})
    env.update(CONSTANTS)
    return env


class Program:
    """All modules reachable from one root file, and the root's namespace."""

    def __init__(self):
        self.modules: dict[str, ModuleEnv] = {}
        self.root: ModuleEnv | None = None
        self.networks: dict[str, object] = {}  # root's networks in file order (defs and aliases)
        self.global_lets: list = []
        self.source_bytes = 0  # text loaded, root and imports: the elaboration budget grows with it
        self.root_source: SourceFile | None = None

    @classmethod
    def from_source(cls, text: str, path: str = "<string>") -> "Program":
        prog = cls()
        prog.root = prog._load_text(text, path, stack=())
        return prog

    @classmethod
    def from_file(cls, path) -> "Program":
        p = Path(path)
        if p.is_dir():
            raise ResdslError("io", f"cannot read {path}: it is a folder", help="give the path of a .res file")
        try:
            text = read_source(p)
        except OSError as e:
            raise ResdslError("io", f"cannot read {path}: {e.strerror}") from None
        prog = cls()
        prog.root = prog._load_text(text, str(path), stack=())
        return prog

    def _load_text(self, text, path, stack) -> ModuleEnv:
        self.source_bytes += len(text)
        if not stack:
            self.root_source = SourceFile(path, text)
        module = self.parse(text, path, imported=bool(stack))
        env = ModuleEnv(path, base_env())
        self.modules[str(Path(path).resolve()) if path != "<string>" else path] = env
        here = Path(path).parent if path != "<string>" else Path.cwd()
        own = {}
        for item in module.items:
            if isinstance(item, ast.Import):
                if item.module in PRIMITIVES:
                    continue
                imported = self._import(item, here, stack + (path,))
                for k, v in imported.names.items():
                    if isinstance(v, (BlockRef, Fn)) or (k not in env.names):
                        env.names.setdefault(k, v)
            elif isinstance(item, (ast.BlockDef, ast.NetworkAlias, ast.FnDef)):
                if item.name in own:
                    raise ResdslError("name", f"`{item.name}` is defined twice", item.span,
                                      notes=[("first defined here", own[item.name].span)])
                if item.name in OPS:
                    raise ResdslError("name", f"`{item.name}` is the name of a primitive op", item.span,
                                      help="choose another name for the " +
                                           ("function" if isinstance(item, ast.FnDef) else "block"))
                own[item.name] = item
                if isinstance(item, ast.FnDef):
                    env.names[item.name] = Fn(item, env)
                    continue
                if isinstance(item, ast.BlockDef):
                    env.names[item.name] = BlockRef(item, env)
                else:
                    env.names[item.name] = ("alias", item, env)
                if (isinstance(item, ast.BlockDef) and item.is_network) or isinstance(item, ast.NetworkAlias):
                    if not stack:
                        self.networks[item.name] = env.names[item.name]
            elif isinstance(item, ast.Let):
                env.names[item.name] = ("let", item, env)
        return env

    def parse(self, text: str, path: str, imported: bool = False):
        """The AST of one file (a hook: the language server caches the imports' ASTs)."""
        return parse(text, path)

    def _import(self, item: ast.Import, here: Path, stack) -> ModuleEnv:
        rel = Path(*item.module.split(".")).with_suffix(".res")
        candidates = [here / rel, STDLIB / rel]
        for c in candidates:
            if c.is_dir():
                raise ResdslError("import", f"`{item.module}` is the folder {c}, not a .res file", item.span,
                                  help="import a file: `import folder.file` reads folder/file.res")
            if c.exists():
                key = str(c.resolve())
                if any(str(Path(s).resolve()) == key for s in stack if s != "<string>"):
                    chain = " -> ".join(Path(s).name for s in stack) + f" -> {c.name}"
                    raise ResdslError("import", f"cyclic import of `{item.module}` ({chain})", item.span,
                                      help="move the shared blocks into a third file that both import")
                if key in self.modules:
                    return self.modules[key]
                try:
                    text = read_source(c)
                except OSError as e:
                    raise ResdslError("import", f"cannot read {c}: {e.strerror}", item.span) from None
                except ResdslError as e:
                    e.notes.append(("imported here", item.span))
                    raise
                return self._load_text(text, str(c), stack)
        names = [p.stem for d in {here, STDLIB} if d.exists() for p in d.glob("*.res")]
        hint = did_you_mean(item.module, names)
        raise ResdslError("import", f"cannot find module `{item.module}`", item.span,
                          label=f"looked for {candidates[0]} and {candidates[1]}",
                          help=hint or f"put {rel} beside this file or in {STDLIB}")


def read_source(path: Path) -> str:
    """The text of a `.res` file, which must be UTF-8 (a leading BOM is allowed).

    Anything else (a latin-1 comment, a UTF-16 file) is an `encoding` error that points at
    the first byte that is not UTF-8."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        before = data[:e.start].decode("utf-8", "replace")
        line = before.count("\n") + 1
        col = len(before) - (before.rfind("\n") + 1) + 1
        src = SourceFile(str(path), data.decode("utf-8", "replace"))
        raise ResdslError("encoding", f"{path} is not UTF-8 text: byte 0x{data[e.start]:02x} at line {line}",
                          Span(src, line, col, line, col + 1),
                          help="save the file as UTF-8 (in most editors: File > Save with Encoding)") from None
