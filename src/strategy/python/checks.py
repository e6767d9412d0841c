"""Static checks of a strategy's source, in Python's own `ast` (run inside the sandbox).

The first wall: a program must parse, hold exactly one top-level `def strategy(board)` with
literal defaults only (top-level imports and a docstring may sit beside it), import only
allowed standard-library modules, and use no name or attribute that reaches interpreter
internals. Each finding is `{category, message, line}` with category one of `syntax`,
`signature`, `forbidden_import`, `non_stdlib_import`, `forbidden_name`.
"""

import ast

from policy import attribute_forbidden, module_verdict, name_forbidden

Finding = dict[str, object]


def _finding(category: str, message: str, node: ast.AST | None = None) -> Finding:
    return {"category": category, "message": message, "line": getattr(node, "lineno", None)}


def _is_literal(node: ast.expr) -> bool:
    """Immutable literals only: constants, and tuples or negations of them."""
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        return _is_literal(node.operand)
    if isinstance(node, ast.Tuple):
        return all(_is_literal(e) for e in node.elts)
    return False


def _signature_findings(tree: ast.Module) -> list[Finding]:
    findings: list[Finding] = []
    functions: list[ast.FunctionDef] = []
    for i, stmt in enumerate(tree.body):
        if isinstance(stmt, ast.FunctionDef):
            functions.append(stmt)
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            continue
        elif i == 0 and isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            continue  # a module docstring
        else:
            kind = type(stmt).__name__
            findings.append(
                _finding("signature", f"top-level {kind} outside def strategy", stmt)
            )
    if len(functions) != 1 or functions[0].name != "strategy":
        names = ", ".join(f.name for f in functions) or "none"
        findings.append(
            _finding("signature", f"need exactly one top-level function strategy, got {names}")
        )
        return findings
    fn = functions[0]
    a = fn.args
    params = [p.arg for p in a.posonlyargs + a.args]
    if params != ["board"] or a.vararg or a.kwarg or a.kwonlyargs:
        findings.append(_finding("signature", "the signature must be strategy(board)", fn))
    if fn.decorator_list:
        findings.append(_finding("signature", "strategy must not be decorated", fn))
    for node in ast.walk(fn):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            defaults = node.args.defaults + [d for d in node.args.kw_defaults if d is not None]
            for d in defaults:
                if not _is_literal(d):
                    findings.append(_finding("signature", "defaults must be literals", d))
    return findings


def _usage_findings(tree: ast.Module) -> list[Finding]:
    findings: list[Finding] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                verdict = module_verdict(alias.name)
                if verdict:
                    findings.append(_finding(verdict, f"import {alias.name}", node))
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                findings.append(_finding("forbidden_import", "relative import", node))
            else:
                verdict = module_verdict(module)
                if verdict:
                    findings.append(_finding(verdict, f"from {module} import ...", node))
            for alias in node.names:
                if alias.name == "*" or attribute_forbidden(alias.name):
                    msg = f"from {module} import {alias.name}"
                    findings.append(_finding("forbidden_name", msg, node))
        elif isinstance(node, ast.Attribute) and attribute_forbidden(node.attr):
            findings.append(_finding("forbidden_name", f"attribute .{node.attr}", node))
        elif isinstance(node, ast.Name) and name_forbidden(node.id):
            findings.append(_finding("forbidden_name", f"name {node.id}", node))
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)) and name_forbidden(node.name):
            findings.append(_finding("forbidden_name", f"definition of {node.name}", node))
        elif isinstance(node, ast.arg) and name_forbidden(node.arg):
            findings.append(_finding("forbidden_name", f"parameter {node.arg}", node))
        elif isinstance(node, ast.alias) and node.asname and name_forbidden(node.asname):
            findings.append(_finding("forbidden_name", f"import as {node.asname}", node))
        elif isinstance(node, ast.keyword) and node.arg and name_forbidden(node.arg):
            findings.append(_finding("forbidden_name", f"keyword {node.arg}", node))
    return findings


def check(source: str) -> list[Finding]:
    """Every finding against the source; an empty list means it passes."""
    try:
        tree = ast.parse(source, mode="exec")
    except SyntaxError as e:
        return [_finding("syntax", f"{e.msg} (line {e.lineno})", None) | {"line": e.lineno}]
    except (ValueError, MemoryError, RecursionError) as e:
        return [_finding("syntax", f"{type(e).__name__}: {e}")]
    return _signature_findings(tree) + _usage_findings(tree)
