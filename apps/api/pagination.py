from rest_framework.pagination import CursorPagination, LimitOffsetPagination


class Pagination(LimitOffsetPagination):
    default_limit = 50
    max_limit = 500


class AuditCursorPagination(CursorPagination):
    """The audit table grows without bound: no COUNT, stable pages while rows are appended."""

    ordering = ("-created_at", "-id")
    page_size = 100
    page_size_query_param = "limit"
    max_page_size = 1000
