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

from django.db import models
from django.db.models import Q
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


class EncryptedAttribute(DeferredAttribute):
    """Opens a sealed value on first read; remembers which row a loaded value came from."""

    field: EncryptedField

    def __get__(self, instance: Any, cls: Any = None) -> Any:
        if instance is None:
            return self
        value = super().__get__(instance, cls)
        if isinstance(value, Sealed):
            value = self.field.open(instance, value)
            instance.__dict__[self.field.attname] = value
        return value

    def __set__(self, instance: Any, value: Any) -> None:
        if isinstance(value, Sealed) and value.row is None:
            value.row = str(instance.pk)
        instance.__dict__[self.field.attname] = value


class EncryptedField(models.Field[Any, Any]):
    """Base of the encrypted fields: subclasses say how a value becomes bytes and back."""

    descriptor_class = EncryptedAttribute

    def get_internal_type(self) -> str:
        """Stored as text (the sealed token)."""
        return "TextField"

    def to_bytes(self, value: Any) -> bytes:
        """Serialise a Python value for encryption."""
        raise NotImplementedError

    def from_bytes(self, raw: bytes) -> Any:
        """Deserialise a decrypted value."""
        raise NotImplementedError

    def _aad(self, instance: Any, community: str, row: str, version: int) -> bytes:
        return associated_data(
            community=community, model=instance._meta.label, field=self.name, row=row, key_version=version
        )

    def open(self, instance: Any, sealed: Sealed) -> Any:
        """Decrypt a loaded value, bound to the community and row it was loaded from."""
        community = current_community()
        if sealed.community != community:
            raise CiphertextIntegrityError("a value loaded in one community was read in another")
        version = key_version_of(sealed.token)
        row = sealed.row or str(instance.pk)
        return self.from_bytes(
            open_sealed(read_key(community, version), sealed.token, aad=self._aad(instance, community, row, version))
        )

    def pre_save(self, model_instance: Any, add: bool) -> Any:
        """Seal the value for this community, model, field and row (unchanged tokens stay as they are)."""
        value = model_instance.__dict__.get(self.attname)
        if value is None:
            return None
        community, row = current_community(), str(model_instance.pk)
        if model_instance.pk is None:
            raise CiphertextIntegrityError(f"{model_instance._meta.label} needs its id before PHI is sealed")
        if isinstance(value, Sealed):
            if (value.community, value.row) == (community, row):
                return Ciphertext(value.token)
            value = self.open(model_instance, value)  # moved to another row: re-seal for it
        version, cipher = write_key(community)
        return seal(
            cipher, self.to_bytes(value), key_version=version, aad=self._aad(model_instance, community, row, version)
        )

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        """Keep what the database holds sealed until the attribute is read."""
        if value is None:
            return None
        return Sealed(value, community=str(connection.schema_name))

    def get_prep_value(self, value: Any) -> Any:
        """Only sealed values (or NULL) reach the database."""
        if value is None or isinstance(value, Ciphertext):
            return value
        raise PlaintextRefused(f"{self.name} is encrypted: save through the model, search through its blind index")

    def value_to_string(self, obj: Any) -> str:
        """Serialisation (dumpdata) never decrypts."""
        raw = obj.__dict__.get(self.attname)
        return raw.token if isinstance(raw, Sealed) else ""


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


class BlindIndexField(models.CharField):  # type: ignore[type-arg]
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
