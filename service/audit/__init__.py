"""Audit trail of cross-tenant reads of citizens' complaints."""
