"""The edge: what runs before and around every request, and nothing deeper.

The middleware stack (proxy trust, request ids, the gateway requirement, API
versions and ``no-store``, body limits, the per-address rate limit), the DRF
exception handler and Django's ``handler*`` views, health probes, Kong's
configuration generated from the URLconf, and the log filters. What every
package shares lives in ``core``; nothing below the edge imports it.
"""
