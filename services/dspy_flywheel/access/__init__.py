"""Access control for operator surfaces: API tokens with roles (RBAC) and the audit log."""

from dspy_flywheel.access.audit import AuditLog, record_audit
from dspy_flywheel.access.rbac import (
    ROLES,
    AccessMiddleware,
    Principal,
    Role,
    TokenStore,
    required_role,
)

__all__ = [
    "ROLES",
    "AccessMiddleware",
    "AuditLog",
    "Principal",
    "Role",
    "TokenStore",
    "record_audit",
    "required_role",
]
