"""Answers kept in Redis under a *generation* that every change moves on, so none is ever read stale.

A lookup that every request makes (which community a host names, who the
caller is in it, whether the caller holds a break-glass grant) is kept in a
Redis hash per generation. A
change to what the answers come from moves the generation on twice: at once,
so nothing cached before the change is read again, and once the change
commits, so an answer read from the database while it was uncommitted is left
behind under a generation nobody reads (each move also drops the scope's
answers of earlier generations). Reading is one round trip (a Lua script reads
the generation and the answer together). A scope's two keys share a hash tag,
so the script runs on a Redis Cluster too.

Only JSON is stored (never pickle), under an HMAC (``SECRET_KEY``) that binds
it to its cache, scope, generation and field: whoever can write to Redis can
drop answers, or at worst bring back one at most ``GENERATION_CACHE_SECONDS``
old by resetting a generation, but cannot forge one (a role, a grant, a
community). An answer that fails the check is logged and asked of the database.
When Redis cannot answer, the caller asks the database: this is a cache, not
the source of truth.

Every answer is also bounded in time, which bounds what a lost invalidation
could leave: it carries the time it was stored, inside the body the HMAC
covers, and is refused once older than ``GENERATION_CACHE_SECONDS``. The
hash's own expiry (renewed on every put, so it follows the newest answer) only
reclaims memory; it bounds nothing.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from django.conf import settings
from django.db import transaction
from django.db.models import Model
from django.utils.crypto import constant_time_compare, salted_hmac
from redis.exceptions import RedisError

from core.redis import get_redis, redis_script

logger = logging.getLogger(__name__)
M = TypeVar("M", bound=Model)

# KEYS[1]: the generation counter; KEYS[2]: the scope's answers; ARGV[1]: the field.
_LOOKUP = """
local generation = redis.call('GET', KEYS[1]) or '0'
return {generation, redis.call('HGET', KEYS[2], generation .. ':' .. ARGV[1])}
"""


@dataclass(frozen=True)
class Lookup:
    """What the cache knows: whether it holds an answer, the answer, and the generation it was asked under."""

    hit: bool
    value: Any
    generation: str | None  # None: Redis did not answer (then nothing is remembered either)


MISS = Lookup(hit=False, value=None, generation=None)


@dataclass(frozen=True)
class GenerationCache:
    """Answers named ``name``, in separate scopes (a community, say), each with its own generation."""

    name: str

    def _generation_key(self, scope: str) -> str:
        if "{" in scope or "}" in scope:  # a brace would make the name a hash tag of its own
            raise ValueError("a cache scope has no braces")
        return f"{self.name}:generation:{scope}"

    def _answers_key(self, scope: str) -> str:
        # Tagged with the whole generation key's name, so both hash to its slot (one Redis Cluster slot, and the
        # generation key keeps the name it always had).
        return f"{{{self._generation_key(scope)}}}:answers"

    def get(self, scope: str, field: str) -> Lookup:
        """The cached answer for ``field`` in ``scope`` (one round trip), or a miss."""
        try:
            generation, cached = redis_script(_LOOKUP)(
                keys=[self._generation_key(scope), self._answers_key(scope)], args=[field]
            )
        except RedisError as error:
            logger.warning("%s cache unavailable (%s)", self.name, type(error).__name__)
            return MISS
        generation = str(generation)
        if cached is None:
            return Lookup(hit=False, value=None, generation=generation)
        mac, _, body = str(cached).partition(".")
        if not constant_time_compare(mac, self._mac(scope, generation, field, body)):
            logger.warning("%s cache: an answer failed its integrity check; asking the database", self.name)
            return Lookup(hit=False, value=None, generation=generation)
        stored_at, _, answer = body.partition(".")
        if not _fresh(stored_at):  # older than the bound: whatever invalidation it missed, ask again
            return Lookup(hit=False, value=None, generation=generation)
        return Lookup(hit=True, value=orjson.loads(answer), generation=generation)

    def put(self, scope: str, lookup: Lookup, field: str, value: Any) -> None:
        """Remember ``value`` under the generation the miss was read at (nothing when Redis was down)."""
        if lookup.generation is None:
            return
        key = self._answers_key(scope)
        body = f"{_now_ms()}.{orjson.dumps(value).decode('utf-8')}"  # the stored-at time is under the HMAC too
        try:
            with get_redis().pipeline(transaction=False) as pipeline:
                answer = f"{self._mac(scope, lookup.generation, field, body)}.{body}"
                pipeline.hset(key, f"{lookup.generation}:{field}", answer)
                pipeline.expire(key, settings.GENERATION_CACHE_SECONDS)
                pipeline.execute()
        except RedisError as error:
            logger.warning("could not remember a %s answer (%s)", self.name, type(error).__name__)

    def _mac(self, scope: str, generation: str, field: str, body: str) -> str:
        message = "\x1f".join((self.name, scope, generation, field, body))
        # The salt names the key's purpose, not this module: answers cached before the kernel existed still verify.
        return salted_hmac("gateway.generations", message, algorithm="sha256").hexdigest()

    def forget(self, scope: str) -> None:
        """Move ``scope``'s generation on now and again once the current transaction commits."""
        self._next_generation(scope)
        transaction.on_commit(lambda: self._next_generation(scope))

    def _next_generation(self, scope: str) -> None:
        try:  # the answers of earlier generations go with it (none would be read again)
            with get_redis().pipeline(transaction=True) as pipeline:
                pipeline.incr(self._generation_key(scope))
                pipeline.delete(self._answers_key(scope))
                pipeline.execute()
        except RedisError as error:  # the answers expire on their own; until then a change may go unseen
            logger.error("could not invalidate the %s cache (%s)", self.name, type(error).__name__)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _fresh(stored_at: str) -> bool:
    """Whether an answer stored at ``stored_at`` (milliseconds) is within ``GENERATION_CACHE_SECONDS`` of now.

    Either way: an answer from the future (a process whose clock runs ahead) is held to the same bound.
    """
    if not (stored_at.isascii() and stored_at.isdigit()):
        return False
    return abs(_now_ms() - int(stored_at)) <= int(settings.GENERATION_CACHE_SECONDS) * 1000


def instance_from(model: type[M], values: dict[str, Any]) -> M:
    """A ``model`` instance as the database would load it with just these fields (the others deferred).

    ``from_db`` takes the values in the model's field order, whatever order they were kept in.
    """
    names = [field.attname for field in model._meta.concrete_fields if field.attname in values]
    return model.from_db("default", names, [values[name] for name in names])
