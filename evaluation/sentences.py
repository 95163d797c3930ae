"""Real English sentences for evaluation, taken from the Python standard library's docstrings.

No data file and no download: the sentences are the first sentences of docstrings (the text
that ``help()`` shows) of a fixed list of standard-library modules and of their public
functions and classes. The exact rule is in :func:`stdlib_sentences`. The order is
deterministic for a given Python version; the wording can change between Python releases, so
record ``sys.version`` next to any number measured on these sentences.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Iterator

__all__ = ["STDLIB_MODULES", "PER_MODULE", "stdlib_sentences"]

#: The standard-library modules visited, in this order. Only pure-Python or always-built
#: modules whose import has no side effect (no network, no GUI, no optional C library).
STDLIB_MODULES: tuple[str, ...] = (
    "abc", "argparse", "ast", "base64", "bisect", "calendar", "cmath", "codecs",
    "collections", "colorsys", "configparser", "contextlib", "copy", "csv", "dataclasses",
    "datetime", "difflib", "dis", "enum", "filecmp", "fnmatch", "fractions", "functools",
    "getopt", "gettext", "glob", "graphlib", "gzip", "hashlib", "heapq", "hmac", "html",
    "inspect", "ipaddress", "itertools", "json", "keyword", "linecache", "locale", "logging",
    "math", "mimetypes", "numbers", "operator", "os", "pathlib", "pickle", "platform",
    "pprint", "queue", "random", "re", "reprlib", "sched", "secrets", "shlex", "shutil",
    "statistics", "string", "struct", "subprocess", "tarfile", "tempfile", "textwrap",
    "threading", "time", "timeit", "tokenize", "traceback", "types", "typing", "unittest",
    "urllib.parse", "uuid", "warnings", "wave", "weakref", "zipfile", "zlib",
)  # fmt: skip

#: At most this many sentences are taken from one module (its own docstring first, then its
#: public members), so that the set spans many topics.
PER_MODULE = 3

_MIN_WORDS = 5
_MAX_CHARS = 200
_SENTENCE_END = re.compile(r"(?<=[a-z0-9)\]])\.(?=\s|$)")


def _first_sentence(doc: str | None) -> str | None:
    """The first sentence of a docstring, or None when it is not a plain English sentence.

    The first paragraph (up to the first blank line) has its whitespace collapsed and is cut
    after the first full stop that follows a lower-case letter, digit or bracket and precedes
    whitespace or the end. It is kept only if that stop exists, the sentence starts with an
    upper-case ASCII letter, is printable ASCII, has at least 5 words and at most 200
    characters, has balanced parentheses, and contains no doctest prompt, signature or markup
    (``>>>``, ``(`` in the first word, backquotes, ``::``).
    """
    if not doc:
        return None
    paragraph = " ".join(doc.strip().split("\n\n", 1)[0].split())
    end = _SENTENCE_END.search(paragraph)
    if end is None:
        return None
    sentence = paragraph[: end.end()]
    first_word = sentence.split(" ", 1)[0]
    if (
        not sentence[0].isascii()
        or not sentence[0].isupper()
        or not sentence.isascii()
        or not sentence.isprintable()
        or len(sentence.split()) < _MIN_WORDS
        or len(sentence) > _MAX_CHARS
        or "(" in first_word
        or sentence.count("(") != sentence.count(")")
        or any(mark in sentence for mark in (">>>", "`", "::"))
    ):
        return None
    return sentence


def _own_doc(obj: object) -> str | None:
    """An object's own docstring, indentation cleaned; never one inherited from a base class."""
    doc = getattr(obj, "__doc__", None)
    return inspect.cleandoc(doc) if isinstance(doc, str) else None


def _module_docstrings(module_name: str) -> Iterator[str | None]:
    """Own docstrings of a module, then of its public members in sorted name order.

    A public member is a name in ``__all__`` if the module defines it, else a name without a
    leading underscore; only functions, builtins and classes count, and only those defined in
    that module (``obj.__module__`` equal to the module's name), so that re-exports are not
    visited twice.
    """
    module = importlib.import_module(module_name)
    yield _own_doc(module)
    names = getattr(module, "__all__", None)
    if names is None:
        names = [name for name in dir(module) if not name.startswith("_")]
    for name in sorted(names):
        obj = getattr(module, name, None)
        if not (inspect.isroutine(obj) or inspect.isclass(obj)):
            continue
        if getattr(obj, "__module__", None) != module.__name__:
            continue
        yield _own_doc(obj)


def stdlib_sentences(n: int = 96) -> list[str]:
    """``n`` distinct English sentences from standard-library docstrings, in a fixed order.

    Source: for each module of :data:`STDLIB_MODULES` in order, the first sentence (see
    ``_first_sentence``) of the module docstring, then of the docstrings of its public
    functions and classes in sorted name order (each object's own ``__doc__``, cleaned with
    ``inspect.cleandoc``: the text ``help()`` prints first; docstrings inherited from a base
    class are not used), at most :data:`PER_MODULE` per module, skipping sentences already
    taken. The list is cut at ``n``. With Python 3.11 the first sentences are "Abstract Base
    Classes (ABCs) according to PEP 3119." (module ``abc``) and "Helper class that provides a
    standard way to create an ABC using inheritance." (``abc.ABC``).

    Raises:
        ValueError: ``n`` is not positive, or the modules yield fewer than ``n`` sentences.
    """
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    taken: list[str] = []
    seen: set[str] = set()
    for module_name in STDLIB_MODULES:
        from_module = 0
        for doc in _module_docstrings(module_name):
            sentence = _first_sentence(doc)
            if sentence is None or sentence in seen:
                continue
            taken.append(sentence)
            seen.add(sentence)
            from_module += 1
            if len(taken) == n:
                return taken
            if from_module == PER_MODULE:
                break
    raise ValueError(f"the standard library gave only {len(taken)} sentences, {n} requested")
