"""The leaf kernel: what every package needs and that needs nothing of the project.

Application errors and their problem documents, the base management command,
the Redis client, generation caches, the GCRA counter, the edge's facts about
a request and the client's address, the one canonical JSON, schema switching
and the slug pattern, the strict serializer, and what every export shares.
It imports Django, DRF, redis, orjson and the standard library only (the
import contract in ``pyproject.toml`` fails the build otherwise). Not a Django
app: it has no models.
"""
