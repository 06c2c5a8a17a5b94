"""The shared kernel's data layer: models, engine, migrations, repositories."""
