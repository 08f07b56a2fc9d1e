"""Provider clients: one module per provider over one small HTTP base."""
