"""The plugin family's declaration: what an entry point in ``overcast.providers`` names."""

from __future__ import annotations

from overcast.resources.registry import Family

FAMILY = Family(
    name="plugin",
    schemes={
        "kv": {"plugkv": "overcast_plugin_family.stores:PluginKeyValueStore"},
        "queue": {"plugq": "overcast_plugin_family.stores:PluginQueue"},
    },
    upstreams={"plugkv": "plugin_kv", "plugq": "plugin_queue"},
)
