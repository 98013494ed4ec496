"""The base of every tool here: a ctapipe Tool that refuses unknown configuration keys.

traitlets only warns about an option no class knows, so a typo in a config file would run
the wrong thing silently; here it stops the tool with a one-line error naming the key and
where it came from.
"""

from ctapipe.core import Tool
from ctapipe.core.tool import ToolConfigurationError
from traitlets.config import Configurable

__all__ = ["GammaLearnTool", "check_config_keys", "known_config_keys"]


def known_config_keys(tool) -> dict:
    """Configurable trait names per section (class name) of ``tool`` and its ``classes``."""
    known = {}
    for cls in (type(tool), *tool.classes):
        for base in cls.mro():
            if hasattr(base, "class_trait_names"):
                known.setdefault(base.__name__, set()).update(base.class_trait_names(config=True))
    return known


def _configurable_names():
    """Names of every configurable class imported so far (ctapipe's and ours)."""
    names, todo = set(), [Configurable]
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return names


def _origin(tool, section, key=None):
    """Where an option was set: the command line, or the config file(s)."""
    cli = tool.cli_config.get(section, {}) if section in tool.cli_config else {}
    if (key is None and section in tool.cli_config) or (key is not None and key in cli):
        return "command line"
    return ", ".join(str(path) for path in tool.config_files) or "configuration"


def check_config_keys(tool):
    """Raise `ToolConfigurationError` for the first unknown section or key of ``tool.config``."""
    _check_sections(tool, tool.config, known_config_keys(tool))


def _check_sections(tool, config, known):
    for section, values in config.items():
        if not section[:1].isupper():  # traitlets' own entries
            continue
        if section not in known and section in _configurable_names():
            # one file often configures several tools (ctapipe-process and the apply tool
            # share gammalearn.yaml): a section of a component this tool does not use is not a typo
            tool.log.debug("configuration section %s is not used by %s", section, tool.name)
            continue
        if section not in known:
            raise ToolConfigurationError(
                f"{_origin(tool, section)}: unknown configuration section {section!r} for {tool.name}"
            )
        # a component's section may hold the sections of its children (Class: Child: key)
        nested = {key: value for key, value in values.items() if key[:1].isupper()}
        _check_sections(tool, nested, known)
        unknown = sorted(set(values) - set(nested) - known[section])
        if unknown:
            raise ToolConfigurationError(
                f"{_origin(tool, section, unknown[0])}: unknown configuration key(s) "
                f"{section}.{', '.join(unknown)} for {tool.name}"
            )


class GammaLearnTool(Tool):
    """ctapipe `Tool` whose configuration is checked for unknown keys before ``setup``."""

    def initialize(self, argv=None):
        super().initialize(argv)
        check_config_keys(self)
