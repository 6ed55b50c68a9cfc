"""Access control for operator surfaces: API tokens with roles (RBAC) and the audit log."""

from dspy_flywheel.access.audit import AuditLog, AuditUnavailable, record_audit
from dspy_flywheel.access.middleware import AccessMiddleware
from dspy_flywheel.access.rbac import ROLES, Principal, Role, TokenStore, required_role

__all__ = [
    "ROLES", "AccessMiddleware", "AuditLog", "AuditUnavailable", "Principal", "Role", "TokenStore",
    "record_audit", "required_role",
]  # fmt: skip
