"""An Orca identity resolver that believes an SSO header set by a trusted reverse proxy.

Built with componentize-py for the world `http-resolver` of `orca:identity@0.1.0`; see
README.md beside this file for the settings and the verdicts.

State that outlives one call lives in the host's `store` (here: a per-user counter of allowed
requests). The parsed settings are per instance, set by `init`, which the gateway runs on every
new instance before its first call.
"""

import hashlib
import ipaddress
from dataclasses import dataclass
from typing import List, Optional, Tuple

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import log, store, types

DEFAULT_HEADER = "x-remote-user"
DEFAULT_GROUPS_HEADER = "x-remote-groups"
SETTINGS = ("header", "groups_header", "trusted")

# Characters allowed in an HTTP header name (RFC 9110 `token`).
_TCHAR = frozenset("abcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+-.^_`|~")

# Limits of the `identity.id` field and of a store key, from the WIT contract.
_MAX_ID_BYTES = 256
_MAX_KEY_BYTES = 256


@dataclass(frozen=True)
class Config:
    header: str
    groups_header: str
    trusted: frozenset


_config: Optional[Config] = None


def _header_name(key: str, value: str) -> str:
    name = value.strip().lower()
    if not name or any(c not in _TCHAR for c in name):
        raise Err(
            f"{key}: {value!r} is not an HTTP header name; "
            f"expected letters, digits and dashes, such as {DEFAULT_HEADER}"
        )
    if name == "cookie":
        raise Err(f"{key}: the cookie header is not shown to resolvers; name another header")
    return name


def _normal_address(text: str):
    """The address as an ip_address object, IPv4-mapped IPv6 folded to IPv4."""
    address = ipaddress.ip_address(text.strip())
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _parse_trusted(value: str) -> frozenset:
    entries = [entry.strip() for entry in value.split(",")]
    addresses = set()
    for entry in entries:
        if not entry:
            continue
        try:
            addresses.add(_normal_address(entry))
        except ValueError:
            raise Err(
                f"trusted: {entry!r} is not an IP address; expected comma-separated "
                "addresses such as 192.0.2.7, 2001:db8::7"
            ) from None
    if not addresses:
        raise Err(
            "trusted: no addresses given; expected the comma-separated IP addresses of the "
            "proxies whose headers are believed"
        )
    return frozenset(addresses)


def parse_settings(settings: List[Tuple[str, str]]) -> Config:
    """The configuration, or `Err` naming the first bad setting."""
    given = {}
    for key, value in settings:
        if key not in SETTINGS:
            raise Err(f"{key}: unknown setting; accepted settings are {', '.join(SETTINGS)}")
        given[key] = value
    header = _header_name("header", given.get("header", DEFAULT_HEADER))
    groups_header = _header_name("groups_header", given.get("groups_header", DEFAULT_GROUPS_HEADER))
    if groups_header == header:
        raise Err(f"groups_header: must differ from header ({header})")
    if "trusted" not in given:
        raise Err(
            "trusted: required setting is missing; give the comma-separated IP addresses of "
            "the proxies whose headers are believed"
        )
    return Config(header, groups_header, _parse_trusted(given["trusted"]))


def _values(headers: List[Tuple[str, str]], name: str) -> List[str]:
    return [value for key, value in headers if key.lower() == name]


def _valid_id(user: str) -> bool:
    if not user or len(user.encode("utf-8")) > _MAX_ID_BYTES:
        return False
    return not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in user)


def _groups(values: List[str]) -> List[str]:
    groups: List[str] = []
    for value in values:
        for group in value.split(","):
            group = group.strip()
            if group and group not in groups:
                groups.append(group)
    return groups


def _counter_key(user: str) -> str:
    key = "allowed:" + user
    if len(key.encode("utf-8")) > _MAX_KEY_BYTES:
        key = "allowed-sha256:" + hashlib.sha256(user.encode("utf-8")).hexdigest()
    return key


def _deny(reason: str) -> types.Verdict:
    return types.Verdict_Deny(types.Denial(reason=reason, message=None))


def decide(config: Config, request: types.HttpRequest) -> Tuple[types.Verdict, str]:
    """The verdict for a request, and a few words about it for the log."""
    try:
        client = _normal_address(request.client.address)
    except ValueError:
        client = None
    if client is None or client not in config.trusted:
        return types.Verdict_Pass(), "pass: client not trusted"
    users = [value.strip() for value in _values(request.headers, config.header)]
    if len(users) > 1:
        reason = f"trusted proxy sent more than one {config.header}"
        return _deny(reason), "deny: " + reason
    if not users or not users[0]:
        reason = f"trusted proxy sent no {config.header}"
        return _deny(reason), "deny: " + reason
    user = users[0]
    if not _valid_id(user):
        reason = f"trusted proxy sent an invalid {config.header}"
        return _deny(reason), "deny: " + reason
    who = types.Identity(
        id=user,
        display_name=None,
        groups=_groups(_values(request.headers, config.groups_header)),
        images=None,
    )
    count = store.increment(_counter_key(user), 1, None)
    verdict = types.Verdict_Allow(types.Grant(who=who, cache_seconds=0, set_cookie=None))
    return verdict, f"allow {user!r} groups={who.groups} (allowed {count} times)"


class Lifecycle(exports.Lifecycle):
    def init(self, settings: List[Tuple[str, str]]) -> None:
        global _config
        try:
            _config = parse_settings(settings)
        except Err as error:
            log.log(log.Level.DEBUG, f"init failed: {error.value}")
            raise
        log.log(
            log.Level.DEBUG,
            f"init: header={_config.header} groups_header={_config.groups_header} "
            f"trusted={len(_config.trusted)} address(es)",
        )


class Http(exports.Http):
    def resolve(self, request: types.HttpRequest) -> types.Verdict:
        if _config is None:
            log.log(log.Level.DEBUG, "resolve before init: deny")
            return _deny("resolver used before init")
        verdict, summary = decide(_config, request)
        log.log(
            log.Level.DEBUG,
            f"resolve {request.method} {request.host} from {request.client.address}: {summary}",
        )
        return verdict
