"""The one place the version lives."""

__version__ = "0.1.0"
# TorchServe's version string that handlers and clients see (system_properties, API description).
TORCHSERVE_COMPAT_VERSION = "0.12.0"
