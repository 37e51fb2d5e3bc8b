"""The agent as the modern API sees it, and the validation both APIs share.

Field limits come from the column definitions in ``roar.db.schema``, so the API can never accept
what the database would truncate or refuse.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Annotated, Any, Final

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

from roar.db.schema import FIELD_COLUMNS, column_length

__all__ = [
    "FIELD_COLUMNS",
    "LEGACY_FIELDS",
    "AgentCreate",
    "AgentPatch",
    "AgentPublic",
    "AgentsPage",
    "LastServiceUpdate",
]

#: Legacy write key -> modern field name.
LEGACY_FIELDS: Final = {
    "AGENT_NAME": "name",
    "AGENT_SPECIES": "species",
    "SERVICE_START": "service_start",
    "SERVICE_LAST": "service_last",
    "ADVERSARY_NAME": "adversary_name",
    "ADVERSARY_TECH": "adversary_tech",
}

# ASCII digits only: \d would let other scripts' digits through to fromisoformat.
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _iso_date(value: Any) -> Any:
    """Accept only real calendar dates written YYYY-MM-DD (no timestamps, no other forms), as
    the document's ``format: date`` says."""
    if value is None or isinstance(value, dt.date):
        return value
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
        raise ValueError("must be a date written YYYY-MM-DD")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value} is not a real calendar date") from None


def _optional_iso_date(value: Any) -> Any:
    return None if value == "" else _iso_date(value)


def _or_empty(schema: dict[str, Any]) -> None:
    # The legacy API's SERVICE_LAST "may be empty"; both APIs (and `roar agents update --last
    # ""`) clear the date so, and the document says it.
    schema["anyOf"].append({"type": "string", "maxLength": 0})


# A None that reaches a required date is refused by the type itself ("valid date").
IsoDate = Annotated[dt.date, BeforeValidator(_iso_date)]
#: A date, or none: null or "".
OptionalIsoDate = Annotated[
    dt.date | None, BeforeValidator(_optional_iso_date), Field(json_schema_extra=_or_empty)
]

#: What str.strip() removes: every whitespace character (none lies above U+3000).
_BLANKS: Final = "".join(c for c in map(chr, range(0x3001)) if c.isspace())
#: "Something besides whitespace", spelled out so that every regex engine (pydantic's, a
#: client's, the fuzzer's) reads the document's pattern the same way.
_NOT_BLANK: Final = "[^" + "".join(f"\\u{ord(c):04x}" for c in _BLANKS) + "]"


def _strip(value: str | None) -> str | None:
    return value.strip(_BLANKS) if value is not None else None


def _not_blank(value: str) -> str:
    stripped = value.strip(_BLANKS)
    if not stripped:
        raise ValueError("must not be blank")
    return stripped


def _required_text(schema: dict[str, Any]) -> None:
    schema["pattern"] = _NOT_BLANK
    schema.pop("default", None)  # a PATCH may leave it out, but null is no valid value


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def _limit(column: str) -> Any:
    """At most the column's length, as sent (what is stored, stripped, is never longer)."""
    return Field(max_length=column_length(column))


# Texts are stored without the whitespace around them. A required one must hold more than
# whitespace: the document says so with _NOT_BLANK, and _not_blank checks exactly that.
_REQUIRED = Field(min_length=1, json_schema_extra=_required_text)
Name = Annotated[str, _limit("NAME"), _REQUIRED, AfterValidator(_not_blank)]
Species = Annotated[str, _limit("SPECIES"), _REQUIRED, AfterValidator(_not_blank)]
AdversaryName = Annotated[str | None, _limit("ADVNAME"), AfterValidator(_strip)]
AdversaryTech = Annotated[str | None, _limit("ADVTECH"), AfterValidator(_strip)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


_LAST = (
    "Date of last service, null or empty for none; not before service_start (a rule JSON "
    "Schema cannot state)"
)


def _last_not_before_start(value: dt.date | None, info: ValidationInfo) -> dt.date | None:
    start = info.data.get("service_start")
    if value is not None and start is not None and value < start:
        raise ValueError(f"must not be before service_start ({start.isoformat()})")
    return value


# Shared fields and the date-order rule of every agent body.
class AgentBase(_Strict):
    name: Name
    species: Species
    service_start: IsoDate
    service_last: OptionalIsoDate = Field(None, description=_LAST)
    adversary_name: AdversaryName = None
    adversary_tech: AdversaryTech = None

    _last_not_before_start = field_validator("service_last")(_last_not_before_start)

    def to_row(self) -> dict[str, Any]:
        """The database row (column names) for these fields; empty texts stored as NULL."""
        return {
            FIELD_COLUMNS[field]: (value if value != "" else None)
            for field, value in self.model_dump().items()
        }


# Body of POST and PUT.
class AgentCreate(AgentBase):
    pass


_KeptDate = Annotated[IsoDate, Field(json_schema_extra=_no_default)]


# Body of PATCH (JSON merge patch): only the fields given change. The result must still be a
# valid agent: a date that would come before (or after) the stored other one is refused (422).
class AgentPatch(_Strict):
    # A required field may be left out (None here) but not removed: null is refused. The None
    # defaults below are outside the field types on purpose (absent, not null): mypy's
    # [assignment] error says just that.
    name: Name = None  # type: ignore[assignment]
    species: Species = None  # type: ignore[assignment]
    service_start: _KeptDate = None  # type: ignore[assignment]
    service_last: OptionalIsoDate = Field(None, description=_LAST)
    adversary_name: AdversaryName = None
    adversary_tech: AdversaryTech = None

    _last_not_before_start = field_validator("service_last")(_last_not_before_start)


# Body of the legacy PUT: which agent (by name), and its new date of last service.
class LastServiceUpdate(BaseModel):
    name: Name
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
        return cls.from_columns(row._mapping)

    @classmethod
    def from_columns(cls, m: Mapping[str, Any]) -> AgentPublic:
        """The agent stored as these columns (by column name)."""
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
