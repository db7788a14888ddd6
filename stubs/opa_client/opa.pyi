# Type stubs for the parts of opa-python-client this project uses.
from typing import Any

import requests

class OpaClient:
    schema: str
    host: str
    port: int
    timeout: float
    _session: requests.Session
    def __init__(
        self,
        host: str = ...,
        port: int = ...,
        version: str = ...,
        ssl: bool = ...,
        cert: str | tuple[str, str] | None = ...,
        headers: dict[str, str] | None = ...,
        token: str | None = ...,
        retries: int = ...,
        timeout: float = ...,
    ) -> None: ...
    def query_rule(
        self,
        input_data: dict[str, Any],
        package_path: str,
        rule_name: str | None = ...,
        query_params: dict[str, Any] | None = ...,
    ) -> Any: ...
