"""Who may do what: the role → permission map.

Resources ask for a permission (``api.auth.require``); object-level rules (owner
or admin) are checked by the resource itself against the loaded row.
"""

from __future__ import annotations

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "buyer": frozenset(
        {
            "profile:read",
            "profile:write",
            "export:create",
            "favorites:write",
            "offers:create",
            "messages:write",
            "uploads:create",
            "searches:write",
        }
    ),
    "seller": frozenset(
        {
            "profile:read",
            "profile:write",
            "export:create",
            "favorites:write",
            "messages:write",
            "uploads:create",
            "searches:write",
            "properties:create",
            "offers:respond",
        }
    ),
    "agent": frozenset(
        {
            "profile:read",
            "profile:write",
            "export:create",
            "favorites:write",
            "messages:write",
            "uploads:create",
            "searches:write",
            "properties:create",
            "offers:create",
            "offers:respond",
        }
    ),
}
ROLE_PERMISSIONS["admin"] = frozenset().union(*ROLE_PERMISSIONS.values()) | frozenset(
    {
        "admin:users",
        "admin:audit",
        "admin:jobs",
        "admin:escrows",
        "admin:search",
        "admin:uploads",
        "admin:reports",
        "admin:notifications",
        "admin:payments",
        "admin:imports",
    }
)


def has_permission(role: str, permission: str) -> bool:
    return permission in ROLE_PERMISSIONS.get(role, frozenset())
