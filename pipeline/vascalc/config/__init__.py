"""The configuration: the schema, reading it, the settings resolved per case, label tables."""

from .load import config_from_dict, load_config
from .schema import Config

__all__ = ["Config", "config_from_dict", "load_config"]
