"""A Python client generated from a served OpenAPI schema by openapi-python-client, and a way to drive it.

:func:`generate` runs the generator's CLI of the venv into a directory (with the venv's ``bin`` on ``PATH``, where
the generator's ruff post-hooks find ruff) and :func:`load` imports the package it wrote. :class:`GeneratedApi`
finds the generated module of an operation by the request it builds (method and URL), not by its name, so that
operation ids and tags may change without touching a test; :class:`Walkthrough` calls operations only through
the generated functions and models, and records every place where the client cannot say what the server does
(a status the schema does not document, an answer the generated model cannot read, a header the operation does
not take) as a *gap*, carrying on so that one run lists them all.
"""

from __future__ import annotations

import enum
import importlib
import inspect
import json
import os
import re
import subprocess
import sys
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx

GENERATOR = Path(sys.executable).parent / "openapi-python-client"
PLACEHOLDER = "PLACEHOLDER"


def generate(schema: Path, package: Path) -> subprocess.CompletedProcess[str]:
    """Generate the client package ``package`` (its directory; no project files around it) from ``schema``."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return subprocess.run(  # noqa: S603  # nosec B603 - the venv's generator with arguments of this module
        [str(GENERATOR), "generate", "--path", str(schema), "--meta", "none", "--output-path", str(package)],
        cwd=package.parent,
        env={**os.environ, "PATH": path},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def load(package: Path) -> ModuleType:
    """Import the generated package from its directory."""
    sys.path.insert(0, str(package.parent))
    try:
        return importlib.import_module(package.name)
    finally:
        sys.path.remove(str(package.parent))


class _Placeholder:
    """Stands in for every required argument when asking a generated module which request it builds."""

    def __str__(self) -> str:
        return PLACEHOLDER

    def to_dict(self) -> dict[str, Any]:
        return {}

    def to_multipart(self) -> list[Any]:
        return []


def _route(module: ModuleType) -> tuple[str, str] | None:
    build = getattr(module, "_get_kwargs", None)
    if build is None:
        return None
    required = {
        name: _Placeholder()
        for name, parameter in inspect.signature(build).parameters.items()
        if parameter.default is inspect.Parameter.empty
    }
    request = build(**required)
    return str(request["method"]).upper(), str(request["url"])


class GeneratedApi:
    """The generated package, its operations found by method and path template."""

    def __init__(self, package: ModuleType) -> None:
        """Index every generated operation module of ``package`` by the request it builds."""
        self.package = package
        self._modules: dict[tuple[str, str], ModuleType] = {}
        root = Path(str(package.__file__)).parent
        for source in sorted((root / "api").rglob("*.py")):
            if source.name == "__init__.py":
                continue
            dotted = ".".join((package.__name__, *source.relative_to(root).with_suffix("").parts))
            module = importlib.import_module(dotted)
            route = _route(module)
            if route is not None:
                self._modules[route] = module

    def module(self, method: str, path: str) -> ModuleType | None:
        """The generated module of ``METHOD path`` (path as the schema writes it, ``{name}`` for parameters)."""
        return self._modules.get((method.upper(), re.sub(r"\{[^}]+\}", PLACEHOLDER, path)))

    def client(self, *, base_url: str, host: str, token: str | None = None, **httpx_args: Any) -> Any:
        """The generated client for ``host`` (sent as the Host header), authenticated when given a token."""
        generated = importlib.import_module(f"{self.package.__name__}.client")
        arguments: dict[str, Any] = {
            "base_url": base_url,
            "headers": {"Host": host},
            "timeout": None,
            "httpx_args": httpx_args,
        }
        if token is None:
            return generated.Client(**arguments)
        return generated.AuthenticatedClient(token=token, **arguments)


def _classes(hint: Any) -> list[type]:
    """The classes a type hint names (``Model | Unset`` gives both)."""
    found = [candidate for candidate in typing.get_args(hint) if isinstance(candidate, type)]
    return found or ([hint] if isinstance(hint, type) else [])


def _python_name(header: str) -> str:
    return re.sub(r"\W", "_", header).lower()


@dataclass
class Answer:
    """What a step got back: the status, the headers, the generated model (``None`` when it could not be read)."""

    status: int
    headers: Mapping[str, str]
    parsed: Any
    body: Any


@dataclass
class Walkthrough:
    """Steps through the generated client, recording each gap between the schema and the server."""

    api: GeneratedApi
    # The statuses the schema documents, by ``METHOD path``.
    documented: Mapping[str, frozenset[int]]
    base_url: str
    gaps: list[str] = field(default_factory=list)
    _answers: list[httpx.Response] = field(default_factory=list)

    def client(self, *, host: str, token: str | None = None) -> Any:
        """A generated client for ``host`` that keeps each answer, so that one its models cannot read is still seen."""
        return self.api.client(base_url=self.base_url, host=host, token=token, event_hooks={"response": [self._keep]})

    def _keep(self, response: httpx.Response) -> None:
        response.read()
        self._answers.append(response)

    def gap(self, text: str) -> None:
        """Record one gap (once)."""
        if text not in self.gaps:
            self.gaps.append(text)

    def call(
        self,
        client: Any,
        method: str,
        path: str,
        *,
        expect: int,
        body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        **arguments: Any,
    ) -> Answer:
        """``METHOD path`` through its generated function, with ``body`` built as the generated request model."""
        label = f"{method} {path}"
        module = self.api.module(method, path)
        if module is None:
            raise AssertionError(f"the generated client has no function for {label}")
        signature = typing.get_type_hints(module.sync_detailed)
        if body is not None:
            model = next((cls for cls in _classes(signature.get("body")) if hasattr(cls, "from_dict")), None)
            if model is None:
                self.gap(f"{label}: the generated function takes no request body model")
            else:
                arguments["body"] = model.from_dict(dict(body))
        for header, value in (headers or {}).items():
            self._header(label, signature, header, value, arguments)
        return self._send(label, module, client, expect, arguments)

    def _header(
        self, label: str, signature: Mapping[str, Any], header: str, value: str, arguments: dict[str, Any]
    ) -> None:
        name = _python_name(header)
        if name not in signature:
            self.gap(f"{label}: the {header} header is not a parameter of the operation (the client cannot send it)")
            return
        kind = next((cls for cls in _classes(signature[name]) if issubclass(cls, enum.Enum)), None)
        arguments[name] = kind(value) if kind is not None else value

    def _send(self, label: str, module: ModuleType, client: Any, expect: int, arguments: dict[str, Any]) -> Answer:
        parsed: Any = None
        unreadable = False
        self._answers.clear()
        try:
            parsed = module.sync_detailed(client=client, **arguments).parsed
        except (TypeError, KeyError, AttributeError, ValueError) as error:
            # The generated model cannot read the answer: recorded, and the walkthrough goes on with its body.
            unreadable = True
            status = self._answers[-1].status_code
            self.gap(f"{label}: the generated client cannot read the {status} answer ({type(error).__name__}: {error})")
        answer = self._answers[-1]
        status, content = answer.status_code, answer.content
        body = json.loads(content) if content and answer.headers.get("content-type", "").endswith("json") else None
        undocumented = status not in self.documented.get(label, frozenset())
        if parsed is None and content and status == expect and not (unreadable or undocumented):
            self.gap(f"{label}: the {status} answer was not read into a model")
        if status != expect:
            # The problem document's code says why; the body itself may hold a record, and stays out of the log.
            code = body.get("code") if isinstance(body, dict) else None
            self.gap(f"{label}: answered {status}{' (undocumented)' if undocumented else ''} {code}, expected {expect}")
        elif undocumented:
            self.gap(f"{label}: answered {status}, which the schema does not document")
        return Answer(status=status, headers=answer.headers, parsed=parsed, body=body)


def documented_statuses(schema: Mapping[str, Any]) -> dict[str, frozenset[int]]:
    """Per ``METHOD path`` of ``schema``, the statuses its responses name (``default`` and ranges are not used)."""
    return {
        f"{method.upper()} {path}": frozenset(int(code) for code in operation.get("responses", {}) if code.isdigit())
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if isinstance(operation, dict) and "responses" in operation
    }
