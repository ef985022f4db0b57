"""Django's PostgreSQL backend, told about the protocol's parameter limit.

With server-side binding (settings: DATABASE_SERVER_SIDE_BINDING, on by default) psycopg sends
every value as a separate parameter, and one statement carries at most 65,535 of them; Django
only knows such a limit for SQLite. Here a bulk insert or update is split into batches under
that limit, as Django does for SQLite."""

from django.db.backends.postgresql import base, features, operations

MAX_QUERY_PARAMS = 65_535


class DatabaseFeatures(features.DatabaseFeatures):
    max_query_params = MAX_QUERY_PARAMS


class DatabaseOperations(operations.DatabaseOperations):
    def bulk_batch_size(self, fields, objs):
        fields = list(fields)
        return max(1, MAX_QUERY_PARAMS // len(fields)) if fields else len(objs)


class DatabaseWrapper(base.DatabaseWrapper):
    features_class = DatabaseFeatures
    ops_class = DatabaseOperations
