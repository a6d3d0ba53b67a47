from rest_framework.pagination import PageNumberPagination

from config.errors import ValidationFailed


def _positive_int(request, name: str, *, maximum: int | None = None) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if not raw.isascii() or not raw.isdigit() or int(raw) < 1 or (maximum is not None and int(raw) > maximum):
        limit = f" up to {maximum}" if maximum is not None else ""
        raise ValidationFailed(
            f"{name} must be a whole number from 1{limit}.",
            code="invalid_page",
            details={"fields": {name: [f"Expected a whole number from 1{limit}."]}},
        )
    return int(raw)


class Pagination(PageNumberPagination):
    """``{"count", "next", "previous", "results"}``; clients choose up to 500 rows with ``?page_size=``.

    ``page`` and ``page_size`` are whole numbers from 1 (``page_size`` up to 500): anything else is a 400
    ``invalid_page`` rather than a silent default; a page past the last is a 404."""

    page_size_query_param = "page_size"
    max_page_size = 500

    def get_page_size(self, request):
        return _positive_int(request, self.page_size_query_param, maximum=self.max_page_size) or self.page_size

    def paginate_queryset(self, queryset, request, view=None):
        _positive_int(request, self.page_query_param)
        return super().paginate_queryset(queryset, request, view)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            parameter["schema"]["minimum"] = 1
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"]["maximum"] = self.max_page_size
        return parameters
