"""``bluegreen deploy|health-check|switch|verify``: the blue/green steps behind the Makefile targets.

``deploy --release R`` starts the idle colour's gunicorn with ``SERVICE_RELEASE=R``; ``health-check`` waits for its
readiness and runs the smoke requests through it; ``switch [--rollback]`` loads Kong's configuration with the
new weights (or the previous one); ``verify`` checks the live colour and rolls back on failure. Kong's admin API is
``KONG_ADMIN_URL``; the smoke login defaults to the demo owner of alpha (``seed_demo``'s password file).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser

from core.commands import ApplicationCommand
from gateway import bluegreen
from gateway.management.commands import kong_config as kong_config_command


def _smoke_from_environment() -> bluegreen.Smoke:
    password = os.environ.get("SMOKE_PASSWORD", "")
    demo = Path(settings.LOCAL_STATE_DIR) / "demo-password"
    if not password and demo.exists():
        password = demo.read_text(encoding="utf-8").strip()
    return bluegreen.Smoke(
        public_host=os.environ.get("SMOKE_PUBLIC_HOST", settings.PUBLIC_HOSTS[0]),
        community_host=os.environ.get("SMOKE_COMMUNITY_HOST", "alpha.localhost"),
        other_community_host=os.environ.get("SMOKE_OTHER_COMMUNITY_HOST", "beta.localhost"),
        email=os.environ.get("SMOKE_EMAIL", "owner@alpha.example"),
        password=password,
    )


class Command(ApplicationCommand):
    """Run one blue/green step."""

    help = "Blue/green deployment: deploy, health-check, switch [--rollback], verify."

    def add_arguments(self, parser: CommandParser) -> None:
        """Declare the step and its options."""
        parser.add_argument("step", choices=["deploy", "health-check", "switch", "verify", "status"])
        parser.add_argument("--release", default=os.environ.get("SERVICE_RELEASE", ""))
        parser.add_argument("--port", type=int)
        parser.add_argument("--timeout", type=float, default=60.0)
        parser.add_argument("--rollback", action="store_true")
        parser.add_argument("--max-error-rate", type=float, default=0.01)
        parser.add_argument(
            "--upstream-ca",
            type=Path,
            default=os.environ.get("KONG_UPSTREAM_CA_FILE") or None,
            help="switch: the CA chain of the service's certificate; the token keys are added with it",
        )

    def run(self, **options: Any) -> None:
        """Run the step; a failure is a CommandError (non-zero exit)."""
        admin_url = str(settings.KONG_ADMIN_URL)
        try:
            self._step(options, admin_url)
        except bluegreen.DeploymentError as error:
            raise CommandError(str(error)) from None

    def _step(self, options: dict[str, Any], admin_url: str) -> None:
        step = options["step"]
        if step == "deploy":
            if not options["release"]:
                raise CommandError("--release (or SERVICE_RELEASE) names the new release")
            colour = bluegreen.deploy(release=options["release"], port=options["port"])
            self.stdout.write(f"{colour} starting with release {options['release']}")
        elif step == "health-check":
            colour = bluegreen.health_check(timeout=options["timeout"], checks=_smoke_from_environment())
            self.stdout.write(f"{colour} is ready and passed the smoke requests")
        elif step == "switch":
            kong_options: dict[str, Any] = {}
            if options["upstream_ca"]:
                cas = kong_config_command.upstream_cas(Path(options["upstream_ca"]))
                kong_options = {"upstream_cas": cas, "signing_keys": kong_config_command.signing_key_pems()}
            colour = bluegreen.switch(admin_url=admin_url, rollback=options["rollback"], kong_options=kong_options)
            self.stdout.write(f"traffic is on {colour}")
        elif step == "verify":
            token = str(getattr(settings, "METRICS_TOKEN", os.environ.get("METRICS_TOKEN", "")))
            failures, rolled_back = bluegreen.verify(
                admin_url=admin_url, metrics_token=token, max_error_rate=options["max_error_rate"]
            )
            if failures:
                outcome = "rolled back" if rolled_back else "nothing to roll back to"
                raise CommandError(f"verification failed, {outcome}: " + "; ".join(failures))
            self.stdout.write("live colour verified")
        else:
            self.stdout.write(str(bluegreen.load_state()))
