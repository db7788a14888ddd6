"""gunicorn's settings for ``make run`` (``scripts/serve.sh``): two workers of four threads, logs on standard output.

The access log never holds a query string. gunicorn's default format logs
``%(r)s``, the request line built from ``RAW_URI``, so a filter in the URL
(once ``?mrn=``) would be written in clear; here the line names the path alone
(``%(U)s``, ``PATH_INFO``), and no referer (``%(f)s``, another URL) or basic-auth
user either. It keeps what an operator needs: the client address, time, method,
path, protocol, status, bytes sent, duration in milliseconds and the request id
the service answered with (``X-Request-ID``, which finds the audit event).

A header whose name holds an underscore is dropped (``header_map``, pinned to
gunicorn's default): Kong passes ``X_Request_ID`` or ``X_Gateway_Host`` on as
the client sent them (nginx's ``underscores_in_headers on``), and mapped, each
would become the ``HTTP_X_...`` of the header Kong set itself.
"""

from __future__ import annotations

workers = 2
threads = 4
accesslog = "-"
errorlog = "-"
access_log_format = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms request_id=%({x-request-id}o)s'
header_map = "drop"
