"""The agent as the modern API sees it, and the validation both APIs share.

Field limits come from the column definitions in ``roar.db.schema``, so the API can never accept
what the database would truncate or refuse.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Final

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator

from roar.db.schema import column_length

__all__ = [
    "FIELD_COLUMNS",
    "LEGACY_FIELDS",
    "AgentCreate",
    "AgentPatch",
    "AgentPublic",
    "AgentsPage",
    "LastServiceUpdate",
]

#: Modern field name -> database column (and legacy read key).
FIELD_COLUMNS: Final = {
    "name": "NAME",
    "species": "SPECIES",
    "service_start": "SRVSTART",
    "service_last": "SRVLAST",
    "adversary_name": "ADVNAME",
    "adversary_tech": "ADVTECH",
}
#: Legacy write key -> modern field name.
LEGACY_FIELDS: Final = {
    "AGENT_NAME": "name",
    "AGENT_SPECIES": "species",
    "SERVICE_START": "service_start",
    "SERVICE_LAST": "service_last",
    "ADVERSARY_NAME": "adversary_name",
    "ADVERSARY_TECH": "adversary_tech",
}

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_date(value: Any) -> Any:
    """Accept only real calendar dates written YYYY-MM-DD (no timestamps, no other forms)."""
    if value is None or isinstance(value, dt.date):
        return value
    if value == "":
        return None
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
        raise ValueError("must be a date written YYYY-MM-DD")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value} is not a real calendar date") from None


# A None that reaches a required date is refused by the type itself ("valid date").
IsoDate = Annotated[dt.date, BeforeValidator(_iso_date)]
OptionalIsoDate = Annotated[dt.date | None, BeforeValidator(_iso_date)]


def _text(column: str, *, required: bool) -> Any:
    return Field(
        ... if required else None,
        min_length=1 if required else 0,
        max_length=column_length(column),
    )


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


# Shared fields and the date-order rule of every agent body.
class AgentBase(_Strict):
    name: str = _text("NAME", required=True)
    species: str = _text("SPECIES", required=True)
    service_start: IsoDate
    service_last: OptionalIsoDate = None
    adversary_name: str | None = _text("ADVNAME", required=False)
    adversary_tech: str | None = _text("ADVTECH", required=False)

    @field_validator("service_last")
    @classmethod
    def _last_not_before_start(cls, value: dt.date | None, info: ValidationInfo) -> dt.date | None:
        start = info.data.get("service_start")
        if value is not None and start is not None and value < start:
            raise ValueError(f"must not be before service_start ({start.isoformat()})")
        return value

    def to_row(self) -> dict[str, Any]:
        """The database row (column names) for these fields; empty texts stored as NULL."""
        return {
            FIELD_COLUMNS[field]: (value if value != "" else None)
            for field, value in self.model_dump().items()
        }


# Body of POST and PUT.
class AgentCreate(AgentBase):
    pass


# Body of PATCH (JSON merge patch): only the fields given change.
class AgentPatch(_Strict):
    name: str | None = _text("NAME", required=False)
    species: str | None = _text("SPECIES", required=False)
    service_start: IsoDate | None = None
    service_last: OptionalIsoDate = None
    adversary_name: str | None = _text("ADVNAME", required=False)
    adversary_tech: str | None = _text("ADVTECH", required=False)


# Body of the legacy PUT: which agent (by name), and its new date of last service.
class LastServiceUpdate(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True)
    name: str = _text("NAME", required=True)
    service_last: OptionalIsoDate = None


# An agent as the modern API answers it.
class AgentPublic(BaseModel):
    id: int
    name: str
    species: str
    service_start: dt.date
    service_last: dt.date | None
    adversary_name: str | None
    adversary_tech: str | None
    version: int = Field(description="Row version; the ETag, to send back in If-Match")

    @classmethod
    def from_row(cls, row: Any) -> AgentPublic:
        m = row._mapping
        return cls(
            id=m["id"],
            version=m["row_version"],
            **{field: m[column] for field, column in FIELD_COLUMNS.items()},
        )


# One page of a listing.
class AgentsPage(BaseModel):
    items: list[AgentPublic]
    total: int = Field(description="Agents matching the filters, over all pages")
    limit: int
    offset: int
