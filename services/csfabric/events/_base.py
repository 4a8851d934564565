"""What every payload model shares: open to new keys, a schema id, times as producers wrote them.

A payload model names its JSON Schema with two class attributes, ``schema_stem`` (the file
``schemas/<stem>.schema.json``) and ``schema_version``; :func:`dataschema` turns them into
the URI a CloudEvent's ``dataschema`` carries and the schema's ``$id`` holds, so an event
says which schema and which version its ``data`` follows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, PlainSerializer

# `urn:csfabric:schema:<stem>:<version>`: a URN because CloudEvents wants an absolute URI
# and the fabric has no web address of its own; the stem is the file in schemas/.
SCHEMA_URN = "urn:csfabric:schema:"


def dataschema(stem: str, version: int) -> str:
    """``dataschema("cloudstack-action", 1)`` → ``urn:csfabric:schema:cloudstack-action:1``."""
    return f"{SCHEMA_URN}{stem}:{version}"


def parse_dataschema(uri: str) -> tuple[str, int] | None:
    """The ``(stem, version)`` a fabric ``dataschema`` names; None for anyone else's URI."""
    if not uri.startswith(SCHEMA_URN):
        return None
    stem, _, version = uri[len(SCHEMA_URN) :].rpartition(":")
    if not stem or not version.isdigit() or not version.isascii():
        return None
    return stem, int(version)


def _iso(value: datetime) -> str:
    return value.isoformat()


# The producer's own offset, written back with `isoformat()` (pydantic alone would turn
# +00:00 into Z), so a payload re-serialised is byte for byte the `data` ingest wrote.
EventTime = Annotated[AwareDatetime, PlainSerializer(_iso, return_type=str, when_used="json")]


def _schema_id(schema: dict[str, Any], model: type[Any]) -> None:
    # The schema's $id is the dataschema URI, so a schema file names its own version.
    if getattr(model, "schema_stem", ""):
        schema["$id"] = dataschema(model.schema_stem, model.schema_version)


class Payload(BaseModel):
    """Base of every event payload: known fields typed, unknown ones kept as they came.

    CloudStack adds body keys between releases and publishers add their own, so an
    unknown key is never an error; it is kept and written back unchanged.
    """

    model_config = ConfigDict(
        extra="allow", frozen=True, populate_by_name=True, json_schema_extra=_schema_id
    )

    schema_stem: ClassVar[str] = ""
    schema_version: ClassVar[int] = 1

    @classmethod
    def dataschema(cls) -> str:
        """The URI a CloudEvent carrying this payload puts in ``dataschema``."""
        return dataschema(cls.schema_stem, cls.schema_version)

    def to_data(self) -> dict[str, Any]:
        """The ``data`` of a CloudEvent: JSON types, CloudStack's own key names."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


__all__ = ["SCHEMA_URN", "EventTime", "Payload", "dataschema", "parse_dataschema"]
