"""The exceptions pagemill raises, by class (DESIGN.md: transient, permanent, critical).

Plugins raise these (or any exception; the engine classifies it) and never retry by themselves.
"""

from __future__ import annotations


class PagemillError(Exception):
    """Base of every error pagemill raises on purpose."""

    error_class = "permanent"


class TransientError(PagemillError):
    """Worth another try: a timeout, a busy resource, a killed worker."""

    error_class = "transient"


class PermanentError(PagemillError):
    """Retrying will not help: a corrupt, encrypted or unsupported file, bad content."""

    error_class = "permanent"


class CorruptDocumentError(PermanentError):
    """The file cannot be read as the document it claims to be."""


class EncryptedDocumentError(PermanentError):
    """The PDF is encrypted and no (right) password was given."""


class UnsupportedDocumentError(PermanentError):
    """Not a PDF nor an image pagemill reads."""


class PageTooLargeError(PermanentError):
    """A page or image over the configured pixel limit (a decompression bomb)."""


class EmptyDocumentError(PermanentError):
    """A document with no pages or no bytes."""


class PoisonPageError(PermanentError):
    """A page that killed or hung its worker on every attempt."""


class CriticalError(PagemillError):
    """The run cannot go on: the OCR binary missing, the ledger unwritable, the disk full."""

    error_class = "critical"


class ConfigError(PagemillError):
    """Bad usage or configuration; the CLI exits 2."""

    error_class = "critical"


class EngineClosedError(PagemillError):
    """An Engine used after close(): process(), run() and submit() need a new Engine."""


class PluginLoadError(ConfigError):
    """A plugin could not be imported or registered."""


class PluginError(PagemillError):
    """A plugin's parent-side hook (a cross-page check, a sink, a run hook) raised: the run ends as
    crashed, the message names the plugin and the hook; the CLI exits 3."""

    error_class = "critical"


class PluginResultError(PermanentError):
    """A plugin's hook returned a value of the wrong type: the page fails, named, the run goes on."""

    def __init__(self, message: str, plugin: str, hook: str) -> None:
        super().__init__(message)
        self.plugin = plugin
        self.hook = hook


class NoLedgerError(ConfigError):
    """The folder given holds no pagemill ledger (status, runs, export, resume): a wrong folder."""


class LedgerError(CriticalError):
    """The ledger is not a pagemill ledger, is from a newer version, or cannot be written."""
