"""What a strategy may use: the one list of forbidden modules, names and attributes.

Read by the static checks (checks.py) and by the runtime import guard (runner.py), both
inside the Pyodide sandbox, so the two walls always agree on what is allowed.
"""

import sys

# Standard-library modules that reach outside the program: the host, the interpreter's
# internals, other threads or processes, files, the network, or code built from strings.
FORBIDDEN_MODULES: frozenset[str] = frozenset(
    {
        "asyncio", "atexit", "bdb", "builtins", "bz2", "cmd", "code", "codecs", "codeop",
        "compileall", "compression", "concurrent", "configparser", "ctypes", "curses", "dbm",
        "dis", "doctest", "ensurepip", "faulthandler", "fcntl", "filecmp", "fileinput",
        "ftplib", "gc", "getpass", "glob", "grp", "gzip", "http", "idlelib", "imaplib",
        "importlib", "inspect", "io", "linecache", "logging", "lzma", "mailbox", "marshal",
        "mmap", "modulefinder", "multiprocessing", "netrc", "nntplib", "os", "pathlib", "pdb",
        "pickle", "pickletools", "pkgutil", "platform", "poplib", "posix", "pty", "pwd",
        "py_compile", "pydoc", "readline", "resource", "rlcompleter", "runpy", "select",
        "selectors", "shelve", "shutil", "signal", "site", "smtplib", "socket", "socketserver",
        "sqlite3", "ssl", "subprocess", "sys", "sysconfig", "tarfile", "tempfile", "termios",
        "threading", "timeit", "tkinter", "tokenize", "trace", "traceback", "tracemalloc",
        "tty", "turtle", "types", "unittest", "urllib", "uuid", "venv", "weakref",
        "webbrowser", "wsgiref", "xmlrpc", "zipapp", "zipfile", "zipimport", "zoneinfo",
        # Pyodide's own bridges to JavaScript and its package installer.
        "js", "pyodide", "pyodide_js", "micropip", "emscripten", "_pyodide", "_pyodide_core",
    }
)  # fmt: skip

# Builtins that build or run code, read or write the interpreter's state, or reach the host.
FORBIDDEN_NAMES: frozenset[str] = frozenset(
    {
        "exec", "eval", "compile", "open", "input", "breakpoint", "help", "__import__",
        "globals", "locals", "vars", "dir", "getattr", "setattr", "delattr", "hasattr",
        "memoryview", "exit", "quit", "copyright", "credits", "license", "__builtins__",
        "__build_class__", "__loader__", "__spec__",
    }
)  # fmt: skip

# Attributes of frames, tracebacks, generators, coroutines and code objects.
FORBIDDEN_ATTRIBUTES: frozenset[str] = frozenset(
    {
        "f_back", "f_builtins", "f_code", "f_globals", "f_locals", "f_lineno", "f_trace",
        "tb_frame", "tb_next", "tb_lasti", "gi_code", "gi_frame", "gi_yieldfrom",
        "cr_await", "cr_code", "cr_frame", "ag_await", "ag_code", "ag_frame",
        "co_code", "co_consts", "co_names", "func_globals", "func_code", "mro",
    }
)  # fmt: skip


def module_verdict(name: str) -> str | None:
    """None when `import name` is allowed, else the finding category that forbids it."""
    root = name.split(".")[0]
    if root in FORBIDDEN_MODULES or root.startswith("_"):
        return "forbidden_import"
    if root not in sys.stdlib_module_names:
        return "non_stdlib_import"
    return None


def attribute_forbidden(attr: str) -> bool:
    """Private and dunder attributes, and those of frames and code, reach interpreter internals."""
    return attr.startswith("_") or attr in FORBIDDEN_ATTRIBUTES


def name_forbidden(name: str) -> bool:
    return name in FORBIDDEN_NAMES or (name.startswith("__") and name.endswith("__"))
