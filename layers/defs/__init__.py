"""The layer declarations: one module per thematic layer, each defining ``LAYER``.

Adding a layer is adding a module here (and a migration for its table): the registry
finds it, and every service reads its declaration.
"""
