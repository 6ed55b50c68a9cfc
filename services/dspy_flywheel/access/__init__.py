"""Access control for operator surfaces: API tokens with roles (RBAC) and the audit log."""

from dspy_flywheel.access.audit import AuditLog
from dspy_flywheel.access.middleware import AccessMiddleware
from dspy_flywheel.access.rbac import Role, TokenStore, required_role

__all__ = ["AccessMiddleware", "AuditLog", "Role", "TokenStore", "required_role"]
