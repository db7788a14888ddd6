"""Encrypted model fields and blind indexes.

A value is sealed when the row is saved (``pre_save``: the row's id is known
then) and opened when the attribute is first read (the descriptor: the row's
id is known then too). In between it is a :class:`Sealed` token. The column
accepts only sealed values: ``QuerySet.update(given_name="Ada")`` or
``filter(given_name="Ada")`` raise :class:`PlaintextRefused` instead of
writing or matching plaintext. Search by exact value goes through a
:class:`BlindIndexField`.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.db import models
from django.db.models import Q, signals
from django.db.models.query_utils import DeferredAttribute

from vault.crypto import Ciphertext, associated_data, key_version_of, open_sealed, seal
from vault.errors import CiphertextIntegrityError, PlaintextRefused
from vault.keys import current_community, index_keys, read_key, write_key

INDEX_BYTES = 16


class Sealed:
    """A ciphertext as loaded, with where it was loaded from (community and row)."""

    __slots__ = ("community", "row", "token")

    def __init__(self, token: str, community: str, row: str | None = None) -> None:
        self.token = token
        self.community = community
        self.row = row

    def __repr__(self) -> str:
        return "<Sealed>"


# Per instance: the sealed token behind each value opened since load, so that an
# unchanged value is neither re-encrypted on save nor ever serialised in clear.
_OPENED = "_vault_opened"
# What pre_save hands over for NULL: a bare None reaching the column means
# QuerySet.update(field=None), which would orphan a blind index.
NULL_SEAL = Ciphertext("")


class EncryptedAttribute(DeferredAttribute):
    """Opens a sealed value on first read and keeps its token aside."""

    field: EncryptedField

    def __get__(self, instance: Any, cls: Any = None) -> Any:
        if instance is None:
            return self
        value = super().__get__(instance, cls)
        if isinstance(value, Sealed):
            opened = instance.__dict__.setdefault(_OPENED, {})
            plaintext = self.field.open(instance, value)
            opened[self.field.attname] = value
            instance.__dict__[self.field.attname] = plaintext
            return plaintext
        return value

    def __set__(self, instance: Any, value: Any) -> None:
        instance.__dict__.get(_OPENED, {}).pop(self.field.attname, None)  # changed: seal anew on save
        instance.__dict__[self.field.attname] = value


def _bind_loaded_rows(model: type[models.Model]) -> None:
    """Wrap ``from_db`` and ``__getstate__`` once per model.

    ``from_db``: a loaded token learns its row (a token taken from ``values()``
    and assigned elsewhere has none, and is refused on save). ``__getstate__``:
    a pickled instance carries tokens, never opened values, and an unsaved
    change to PHI cannot be pickled at all.
    """
    if getattr(model, "_vault_bound", False):
        return
    original_from_db = model.from_db.__func__  # type: ignore[attr-defined]  # a classmethod's function
    original_getstate = model.__getstate__

    def from_db(cls: Any, db: Any, field_names: Any, values: Any) -> Any:
        instance = original_from_db(cls, db, field_names, values)
        for field in cls._meta.concrete_fields:
            value = instance.__dict__.get(field.attname)
            if isinstance(field, EncryptedField) and isinstance(value, Sealed):
                value.row = str(instance.pk)
        return instance

    def getstate(self: Any) -> Any:
        state = dict(original_getstate(self))
        opened = state.pop(_OPENED, {})
        for field in type(self)._meta.concrete_fields:
            if not isinstance(field, EncryptedField) or state.get(field.attname) is None:
                continue
            if field.attname in opened:
                state[field.attname] = opened[field.attname]
            elif not isinstance(state[field.attname], Sealed):
                raise PlaintextRefused(f"an unsaved change to {field.name} cannot be pickled")
        return state

    model.from_db = classmethod(from_db)  # type: ignore[method-assign,assignment]  # patched once per model
    model.__getstate__ = getstate  # type: ignore[method-assign]  # pickles without plaintext
    model._vault_bound = True  # type: ignore[attr-defined]  # our marker on the class


class EncryptedField(models.Field[Any, Any]):
    """Base of the encrypted fields: subclasses say how a value becomes bytes and back."""

    descriptor_class = EncryptedAttribute

    def contribute_to_class(self, cls: type[models.Model], name: str, private_only: bool = False) -> None:
        """Install the field and bind loaded tokens to their rows."""
        super().contribute_to_class(cls, name, private_only=private_only)
        if not cls._meta.abstract:
            _bind_loaded_rows(cls)

    def get_internal_type(self) -> str:
        """Stored as text (the sealed token)."""
        return "TextField"

    def to_bytes(self, value: Any) -> bytes:
        """Serialise a Python value for encryption."""
        raise NotImplementedError

    def from_bytes(self, raw: bytes) -> Any:
        """Deserialise a decrypted value."""
        raise NotImplementedError

    @staticmethod
    def model_label(instance: Any) -> str:
        """The model a value is bound to: the concrete one (a proxy reads what its concrete model wrote).

        Renaming a model or a field changes the binding, so such a migration must
        re-encrypt (as a rotation does).
        """
        return str(instance._meta.concrete_model._meta.label)

    def seal_for(
        self, cipher: AESGCM, plaintext: bytes, *, community: str, model: str, row: str, version: int
    ) -> Ciphertext:
        """``plaintext`` sealed with data key ``version`` for one community, model, field and row (what is stored)."""
        aad = associated_data(community=community, model=model, field=self.name, row=row, key_version=version)
        return seal(cipher, plaintext, key_version=version, aad=aad)

    def open_for(self, key_of: Callable[[int], AESGCM], token: str, *, community: str, model: str, row: str) -> bytes:
        """The plaintext of a stored ``token`` of one community, model, field and row.

        ``key_of(version)`` gives the data key the token names; a token sealed
        for anything else raises :class:`CiphertextIntegrityError`.
        """
        version = key_version_of(token)
        aad = associated_data(community=community, model=model, field=self.name, row=row, key_version=version)
        return open_sealed(key_of(version), token, aad=aad)

    def open(self, instance: Any, sealed: Sealed) -> Any:
        """Decrypt a loaded value, bound to the community and row it was loaded from."""
        community = current_community()
        if sealed.community != community:
            raise CiphertextIntegrityError("a value loaded in one community was read in another")
        if sealed.row is None:
            raise CiphertextIntegrityError("a sealed value of unknown origin")
        plaintext = self.open_for(
            lambda version: read_key(community, version), sealed.token,
            community=community, model=self.model_label(instance), row=sealed.row,
        )  # fmt: skip
        return self.from_bytes(plaintext)

    def pre_save(self, model_instance: Any, add: bool) -> Any:
        """Seal the value for this community, model, field and row; unchanged values keep their token."""
        value = model_instance.__dict__.get(self.attname)
        if value is None:
            return NULL_SEAL
        community, row = current_community(), str(model_instance.pk)
        if model_instance.pk is None:
            raise CiphertextIntegrityError(f"{model_instance._meta.label} needs its id before PHI is sealed")
        sealed = value if isinstance(value, Sealed) else model_instance.__dict__.get(_OPENED, {}).get(self.attname)
        if sealed is not None:
            if (sealed.community, sealed.row) == (community, row):
                return Ciphertext(sealed.token)
            value = self.open(model_instance, sealed)  # moved to another row: re-seal for it
        version, cipher = write_key(community)
        return self.seal_for(
            cipher, self.to_bytes(value), community=community, model=self.model_label(model_instance), row=row,
            version=version,
        )  # fmt: skip

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        """Keep what the database holds sealed until the attribute is read."""
        if value is None:
            return None
        return Sealed(value, community=str(connection.schema_name))

    def get_prep_value(self, value: Any) -> Any:
        """Only values sealed by ``pre_save`` reach the database (NULL included)."""
        if value is NULL_SEAL:
            return None
        if isinstance(value, Ciphertext):
            return str(value)
        raise PlaintextRefused(f"{self.name} is encrypted: save through the model, search through its blind index")

    def value_from_object(self, obj: Any) -> Any:
        """What serialisers (dumpdata, model_to_dict) see: the stored token, never the opened value."""
        raw = obj.__dict__.get(self.attname)
        if raw is None:
            return None
        sealed = raw if isinstance(raw, Sealed) else obj.__dict__.get(_OPENED, {}).get(self.attname)
        if sealed is None:
            raise PlaintextRefused(f"{self.name} holds an unsaved value: save it before serialising")
        return sealed.token

    def value_to_string(self, obj: Any) -> str:
        """Serialisation never decrypts."""
        token = self.value_from_object(obj)
        return "" if token is None else str(token)


class EncryptedTextField(EncryptedField):
    """Text, encrypted."""

    _pyi_private_set_type: str | None
    _pyi_private_get_type: str | None

    def to_bytes(self, value: Any) -> bytes:
        """UTF-8."""
        return str(value).encode("utf-8")

    def from_bytes(self, raw: bytes) -> Any:
        """UTF-8."""
        return raw.decode("utf-8")


class EncryptedDateField(EncryptedField):
    """A date, encrypted (ISO 8601)."""

    _pyi_private_set_type: datetime.date | None
    _pyi_private_get_type: datetime.date | None

    def to_bytes(self, value: Any) -> bytes:
        """ISO date."""
        if not isinstance(value, datetime.date) or isinstance(value, datetime.datetime):
            raise TypeError(f"{self.name} takes a date")
        return value.isoformat().encode("ascii")

    def from_bytes(self, raw: bytes) -> Any:
        """ISO date."""
        return datetime.date.fromisoformat(raw.decode("ascii"))


class EncryptedJSONField(EncryptedField):
    """A JSON value, encrypted."""

    _pyi_private_set_type: Any
    _pyi_private_get_type: Any

    def to_bytes(self, value: Any) -> bytes:
        """Canonical JSON."""
        return json.dumps(value, sort_keys=True, separators=(",", ":")).encode("utf-8")

    def from_bytes(self, raw: bytes) -> Any:
        """JSON."""
        return json.loads(raw)


NORMALIZERS: dict[str, Callable[[str], str]] = {
    "exact": lambda value: value.strip(),
    "identifier": lambda value: "".join(value.split()).upper(),
    "email": lambda value: value.strip().lower(),
}


class BlindIndexField(models.CharField):  # type: ignore[type-arg]  # django-stubs' generic field
    """HMAC-SHA256 (truncated) of another field's normalised value under the community's index key.

    Stored as ``<index key version>:<hex>``; a search tries every live index key
    version, so lookups keep working while a rotation re-indexes.
    """

    def __init__(self, *args: Any, source: str = "", normalizer: str = "exact", **kwargs: Any) -> None:
        self.source = source
        self.normalizer = normalizer
        kwargs.setdefault("max_length", 48)
        kwargs.setdefault("db_index", True)
        kwargs.setdefault("editable", False)
        kwargs.setdefault("null", True)
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> Any:
        """Keep ``source`` and ``normalizer`` in migrations."""
        name, path, args, kwargs = super().deconstruct()
        kwargs.update(source=self.source, normalizer=self.normalizer)
        return name, path, args, kwargs

    def digest(self, key: bytes, version: int, value: str) -> str:
        """The index value of ``value`` under one key version."""
        normalised = NORMALIZERS[self.normalizer](value)
        mac = hmac.new(key, normalised.encode("utf-8"), hashlib.sha256).hexdigest()[: INDEX_BYTES * 2]
        return f"{version}:{mac}"

    def contribute_to_class(self, cls: type[models.Model], name: str, private_only: bool = False) -> None:
        """Install the field; saving its source without it is refused (the index would go stale)."""
        super().contribute_to_class(cls, name, private_only=private_only)
        if not cls._meta.abstract:
            signals.pre_save.connect(self._keep_in_step, sender=cls, weak=False)

    def _keep_in_step(self, sender: Any, update_fields: Any = None, **kwargs: Any) -> None:
        if update_fields and self.source in update_fields and self.attname not in update_fields:
            raise PlaintextRefused(f"save(update_fields=...) with {self.source} must include {self.attname}")

    def pre_save(self, model_instance: Any, add: bool) -> Any:
        """Index the source field's current value with the newest index key."""
        value = getattr(model_instance, self.source)
        if value is None:
            return None
        version, key = index_keys(current_community())[0]
        return self.digest(key, version, str(value))

    def candidates(self, value: str) -> list[str]:
        """Index values ``value`` may be stored under (one per live key version)."""
        return [self.digest(key, version, value) for version, key in index_keys(current_community())]


def blind_index_filter(model: type[models.Model], field_name: str, value: str) -> Q:
    """``Q`` matching rows whose indexed source equals ``value`` (after normalisation)."""
    field = model._meta.get_field(field_name)
    if not isinstance(field, BlindIndexField):
        raise TypeError(f"{field_name} is not a blind index")
    return Q(**{f"{field_name}__in": field.candidates(value)})


def encrypted_fields(model: type[models.Model]) -> list[models.Field[Any, Any]]:
    """The encrypted and blind index fields of a model (rotation re-saves exactly these)."""
    return [field for field in model._meta.concrete_fields if isinstance(field, EncryptedField | BlindIndexField)]
