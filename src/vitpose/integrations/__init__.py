"""Integrations with other engines, each behind its own optional extra and imported lazily
(`vitpose.integrations.ray`: Ray Data stages, `pip install "vitpose[ray]"`)."""
