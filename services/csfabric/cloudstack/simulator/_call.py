"""One API call as command handlers see it: parameters, caller, world, helpers.

Also the response conventions shared by every command: CloudStack's date format, list
responses (``count`` = total before paging; an empty list is ``{}``), tag rendering, and
which owners a caller may see (``listall``, ``projectid``, domain admins' subtree).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from csfabric.cloudstack.simulator._errors import invalid_parameter, not_found
from csfabric.cloudstack.simulator._state import Account, Tag, User
from csfabric.cloudstack.simulator._world import World

if TYPE_CHECKING:
    from csfabric.cloudstack.simulator._emit import Emitter

T = TypeVar("T")
Json = dict[str, Any]
_TAG_PARAM = re.compile(r"^tags\[(\d+)\]\.(key|value)$")


def cs_date(dt: datetime | None) -> str | None:
    """CloudStack's API date format, ``yyyy-MM-dd'T'HH:mm:ssZ`` (``+0000``)."""
    return dt.strftime("%Y-%m-%dT%H:%M:%S%z") if dt else None


@dataclass
class Call:
    command: str
    params: dict[str, str]  # lower-cased names
    world: World
    user: User
    account: Account
    emitter: Emitter

    # -- parameters -------------------------------------------------------------------------

    def get(self, name: str) -> str | None:
        value = self.params.get(name)
        return value if value not in (None, "") else None

    def req(self, name: str) -> str:
        value = self.get(name)
        if value is None:  # registry-declared params are checked earlier; this is a guard
            raise invalid_parameter(f"Missing parameter {name}")
        return value

    def flag(self, name: str) -> bool:
        return (self.get(name) or "").lower() == "true"

    def int_param(self, name: str, default: int) -> int:
        raw = self.get(name)
        if raw is None:
            return default
        try:
            return int(raw)
        except ValueError:
            raise invalid_parameter(f"Unable to translate parameter {name}: {raw}") from None

    def tag_filter(self) -> dict[str, str]:
        """``tags[0].key=k&tags[0].value=v`` → ``{k: v}``."""
        pairs: dict[str, dict[str, str]] = {}
        for name, value in self.params.items():
            m = _TAG_PARAM.match(name)
            if m:
                pairs.setdefault(m.group(1), {})[m.group(2)] = value
        return {p["key"]: p.get("value", "") for p in pairs.values() if "key" in p}

    # -- visibility -------------------------------------------------------------------------

    def visible_owners(self) -> set[str]:
        """Account ids whose resources this list call shows (CloudStack's list scoping)."""
        w = self.world
        projectid = self.get("projectid")
        if projectid == "-1":
            owners = {a.id for a in w.accounts.values() if a.project_id}
        elif projectid is not None:
            owners = {self.project(projectid).account_id}
        elif self.flag("listall") and self.account.accounttype in (1, 2):
            owners = {a.id for a in w.accounts.values() if not a.project_id}
        else:
            owners = {self.account.id}
        if self.account.accounttype == 2:
            root = w.domains[self.account.domainid].path
            owners = {
                o
                for o in owners
                if (w.domains[w.accounts[o].domainid].path + "/").startswith(root + "/")
            }
        elif self.account.accounttype == 0 and projectid is None:
            owners = {self.account.id}
        return owners

    def owned(self, items: Iterable[T], owner: Callable[[T], str]) -> list[T]:
        owners = self.visible_owners()
        return [i for i in items if owner(i) in owners]

    # -- look-ups ---------------------------------------------------------------------------

    def project(self, uuid: str) -> Any:
        proj = self.world.projects.get(uuid)
        if proj is None:
            raise not_found("project", uuid)
        return proj

    def tags(self, resource_id: str) -> list[Json]:
        return [render_tag(self.world, t) for t in self.world.tags_for(resource_id)]

    def match_tags(self, resource_id: str) -> bool:
        wanted = self.tag_filter()
        if not wanted:
            return True
        have = {t.key: t.value for t in self.world.tags_for(resource_id)}
        return all(have.get(k) == v for k, v in wanted.items())

    # -- responses --------------------------------------------------------------------------

    def page(self, items: Sequence[T]) -> list[T]:
        pagesize = self.int_param("pagesize", 0)
        if pagesize <= 0:
            return list(items)
        page = max(self.int_param("page", 1), 1)
        return list(items[(page - 1) * pagesize : page * pagesize])

    def list_response(self, key: str, items: Sequence[T], render: Callable[[T], Json]) -> Json:
        if not items:
            return {}
        return {"count": len(items), key: [render(i) for i in self.page(items)]}


def render_tag(world: World, tag: Tag) -> Json:
    out: Json = {
        "key": tag.key,
        "value": tag.value,
        "resourcetype": tag.resourcetype,
        "resourceid": tag.resourceid,
    }
    return out | world.owner_of(tag.account_id)
