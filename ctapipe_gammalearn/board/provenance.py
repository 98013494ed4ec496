"""Which ctapipe provenance log entry made a run, and what it says: command, machine, duration.

ctapipe writes a provenance log where ``--provenance-log`` points (by default
``<tool>.provenance.log`` in the working directory), appending one json list per run. The
board looks in the run folder, one and two folders below it (the quickstart's
``provenance/``), next to it (``<folder>.provenance.log``) and in the logs given with
``--provenance``, and takes the newest activity that wrote a file inside the run folder.
Each log is parsed once, however many runs it serves.
"""

import json
import logging
import shlex
import subprocess
from pathlib import Path

__all__ = ["ProvenanceIndex", "describe_activity", "git_version"]

log = logging.getLogger(__name__)


def _parse_concatenated(text):
    """Activities of a log holding one or more json lists written one after the other."""
    decoder, position, activities = json.JSONDecoder(), 0, []
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position >= len(text):
            return activities
        value, position = decoder.raw_decode(text, position)
        activities.extend(value if isinstance(value, list) else [value])


class ProvenanceIndex:
    """Parsed provenance logs, looked up by the folder a run wrote to."""

    def __init__(self, extra_logs=()):
        self.extra_logs = [Path(p) for p in extra_logs]
        self._parsed = {}

    def activities(self, path):
        path = Path(path).absolute()
        if path not in self._parsed:
            try:
                self._parsed[path] = [a for a in _parse_concatenated(path.read_text()) if isinstance(a, dict)]
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
                # provenance is optional: an unreadable log costs its lines on the page only
                log.warning("%s: not a ctapipe provenance log, skipped (%s)", path, err)
                self._parsed[path] = []
        return self._parsed[path]

    def _candidates(self, directory, root):
        found = []
        for folder in dict.fromkeys([directory, root]):
            found += sorted(folder.glob("*.log")) + sorted(folder.glob("*/*.log")) + sorted(folder.glob("*/*/*.log"))
            found.append(folder.parent / f"{folder.name}.provenance.log")
        return [p for p in dict.fromkeys(found + self.extra_logs) if p.is_file()]

    def activity_for(self, directory, root=None):
        """The newest activity whose outputs lie in ``directory`` (None where no log has one)."""
        if directory is None:
            return None
        directory = Path(directory).absolute()
        best = None
        for path in self._candidates(directory, Path(root or directory).absolute()):
            for activity in self.activities(path):
                outputs = [Path(o.get("url", "")) for o in activity.get("output", []) if isinstance(o, dict)]
                if any(_inside(o, directory) for o in outputs):
                    start = activity.get("start", {}).get("time_utc", "")
                    if best is None or start >= best.get("start", {}).get("time_utc", ""):
                        best = activity
        return best


def _inside(path, directory):
    try:
        path.absolute().relative_to(directory)
    except ValueError:
        return False
    return True


def describe_activity(activity):
    """``{label: text}`` of one provenance activity (empty for None)."""
    if not activity:
        return {}
    system = activity.get("system", {})
    platform = system.get("platform", {})
    arguments = system.get("arguments") or []
    command = " ".join(shlex.quote(a) for a in [Path(arguments[0]).name, *arguments[1:]]) if arguments else ""
    duration = activity.get("duration_min")
    machine = ", ".join(
        str(v) for v in (
            platform.get("node"),
            f"{platform.get('system', '')} {platform.get('release', '')}".strip(),
            platform.get("machine"),
            f"{platform['n_cpus']} CPUs" if platform.get("n_cpus") else None,
        ) if v
    )
    python = (system.get("python", {}).get("version_string") or "").split(" ")[0]
    return {
        "tool": activity.get("activity_name", ""),
        "command": command,
        "started (UTC)": activity.get("start", {}).get("time_utc", ""),
        "duration": f"{duration:.1f} min" if isinstance(duration, int | float) else "",
        "status": f"{activity.get('status', '')} (exit code {activity.get('exit_code', '?')})",
        "machine": machine,
        "software": f"Python {python}, ctapipe {system.get('ctapipe_version', '?')}",
        "git": git_version(activity),
    }


def git_version(activity):
    """The commit of the source tree the tool ran from, as of the run's start: the last commit
    before it in the git repository that holds the tool's Python (an editable install's
    ``.venv``). Uncommitted changes of that moment cannot be known; the text says so."""
    executable = (activity.get("system") or {}).get("executable")
    start = (activity.get("start") or {}).get("time_utc")
    if not executable or not start:
        return ""
    repo = next((p for p in Path(executable).parents if (p / ".git").exists()), None)
    if repo is None:
        return "not run from a git checkout"
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), "log", "-1", f"--before={start}+00:00", "--format=%h %cs %s"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return f"{repo} (git unavailable)"
    return f"{out} — last commit of {repo} before the start (uncommitted changes not known)" if out else ""
