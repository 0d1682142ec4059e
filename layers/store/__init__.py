"""Where the layers live: the engine, the private cluster, migrations, the schema, bulk loading."""
